"""Do-Not-Call lists: import with a date; listed numbers are never called; a list older than 31 days blocks calls."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select
from typer.testing import CliRunner

from outbound.cli import app
from outbound.db.models import DncImport, Suppression
from outbound.db.session import transaction
from outbound.ingest.dnc import dnc_status, import_dnc, may_call

runner = CliRunner()


def write_list(tmp_path, *lines):
    path = tmp_path / "dnc.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_an_imported_list_suppresses_its_numbers_for_calls_and_reports_bad_lines(world, tmp_path):
    tenant = world.tenant()
    path = write_list(
        tmp_path,
        "phone_number",
        "# national registry extract",
        "+1 512 555 0100",
        "(512) 555-0101",
        "not a number",
        "+15125550100",
    )
    with transaction(world.runtime.factory) as session:
        report = import_dnc(
            session,
            session.merge(tenant, load=False),
            path,
            list_date=date(2026, 11, 15),
            source="registry",
            clock=world.clock,
        )
    assert (report.added, report.already) == (2, 0)
    assert report.errors == ["line 5: not a valid phone number: 'not a number'"]
    with world.runtime.factory() as session:
        rows = session.scalars(select(Suppression)).all()
        assert {(r.channel, r.reason) for r in rows} == {("voice", "dnc")}
        assert session.scalar(select(DncImport.entries)) == 2


def test_may_call_blocks_listed_numbers_and_allows_others_while_the_list_is_fresh(world, tmp_path):
    tenant = world.tenant()
    with transaction(world.runtime.factory) as session:
        import_dnc(
            session,
            session.merge(tenant, load=False),
            write_list(tmp_path, "+15125550100"),
            list_date=world.clock.now() - timedelta(days=1),
            source="registry",
            clock=world.clock,
        )
    now = world.clock.now()
    with world.runtime.factory() as session:
        assert may_call(session, tenant.id, "+1 (512) 555-0100", now).rule == "dnc"
        assert may_call(session, tenant.id, "+15125550199", now).rule == "allow"


def test_a_list_31_days_old_still_allows_calls_and_a_day_later_blocks_them_all(world, tmp_path):
    tenant = world.tenant()
    published = world.clock.now() - timedelta(days=2)
    with transaction(world.runtime.factory) as session:
        import_dnc(
            session,
            session.merge(tenant, load=False),
            write_list(tmp_path, "+15125550100"),
            list_date=published,
            source="registry",
            clock=world.clock,
        )
    with world.runtime.factory() as session:
        fresh = dnc_status(session, tenant.id, published + timedelta(days=31))
        stale = dnc_status(session, tenant.id, published + timedelta(days=31, hours=1))
        assert fresh.fresh and fresh.age_days == 31
        assert not stale.fresh
        blocked = may_call(session, tenant.id, "+15125550199", published + timedelta(days=32))
        assert blocked.rule == "dnc_stale" and "32 days old" in blocked.reason


def test_without_any_list_a_us_tenant_may_not_call(world):
    tenant = world.tenant()
    with world.runtime.factory() as session:
        assert not dnc_status(session, tenant.id, world.clock.now()).fresh
        assert may_call(session, tenant.id, "+15125550199", world.clock.now()).rule == "dnc_stale"


def test_a_kr_tenant_needs_no_list_but_listed_numbers_stay_blocked(world, tmp_path):
    tenant = world.tenant("shop-kr", jurisdiction="KR", timezone="Asia/Seoul", locale="ko")
    with world.runtime.factory() as session:
        assert may_call(session, tenant.id, "+821012345678", world.clock.now()).rule == "allow"
    with transaction(world.runtime.factory) as session:
        import_dnc(
            session,
            session.merge(tenant, load=False),
            write_list(tmp_path, "010-1234-5678"),
            list_date=date(2020, 1, 1),
            source="own list",
            clock=world.clock,
        )
    with world.runtime.factory() as session:
        assert may_call(session, tenant.id, "+821012345678", world.clock.now()).rule == "dnc"


def test_dnc_import_from_the_command_line_says_whether_calls_are_allowed(world, tmp_path):
    world.tenant()
    path = write_list(tmp_path, "+15125550100")
    url = world.runtime.settings.database_url
    today = date.today()
    result = runner.invoke(app, ["contacts", "dnc", "import", str(path), "--list-date", today.isoformat(), "--db", url])
    assert result.exit_code == 0, result.output
    assert "1 numbers added" in result.output and "calls allowed" in result.output
    old = runner.invoke(app, ["contacts", "dnc", "import", str(path), "--list-date", "2020-01-01", "--db", url])
    assert "1 already suppressed" in old.output and "calls allowed" in old.output  # the newest list counts
    bad = runner.invoke(app, ["contacts", "dnc", "import", str(path), "--list-date", "yesterday", "--db", url])
    assert bad.exit_code == 1 and "list_date" in bad.output
