"""One scheduler leads at a time; a second one waits and takes over when the first lets go."""

from outbound.db.session import make_engine
from outbound.jobs.leader import Leadership


def test_a_second_scheduler_cannot_lead_until_the_first_releases(db_url):
    first_engine, second_engine = make_engine(db_url), make_engine(db_url)
    first, second = Leadership(first_engine), Leadership(second_engine)
    try:
        assert first.acquire() is True
        assert first.acquire() is True  # already leading: still true, nothing new taken
        assert second.acquire() is False
        first.release()
        assert second.acquire() is True
        assert first.acquire() is False
    finally:
        first.release()
        second.release()
        first_engine.dispose()
        second_engine.dispose()
