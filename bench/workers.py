"""Scale-out: the same backlog of due messages drained by 1, 2 and 4 worker processes on one database.

Each worker is a process of its own with its own engine and dispatcher, as `outbound worker` runs;
they start together (a barrier) and the figure is the backlog over the time until the last one
finds nothing due. The floor is one worker. On PostgreSQL the workers claim disjoint batches
(FOR UPDATE SKIP LOCKED) and work side by side; on SQLite a tick holds the write lock from claim
to commit, so workers take turns. The database server shares the machine's cores with the workers.
"""

from __future__ import annotations

import multiprocessing
import queue
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from bench.common import T0, Figure, database, seed_contacts, timed
from bench.pipeline import _enroll_all, definitions
from outbound.bootstrap import build
from outbound.clock import SimulatedClock
from outbound.config import Settings
from outbound.db.models import Message
from outbound.db.session import make_engine
from outbound.definitions import load_definitions
from outbound.providers import Outbox


def _settings(url: str) -> Settings:
    return Settings(database_url=url, dispatch_batch_size=500, sms_rate_per_second=0, email_rate_per_second=0)


def _worker(url: str, folder: str, barrier, sent) -> None:
    # The parent wrote the definitions; workers only read them (writing them side by side would race).
    runtime = build(
        _settings(url),
        clock=SimulatedClock(T0 + timedelta(hours=1)),
        providers={"sms": Outbox()},
        definitions=load_definitions(Path(folder)),
    )
    barrier.wait()
    report = runtime.dispatcher.drain()
    sent.put(report.sent)
    runtime.close()


def drain_with(url: str, folder: str, processes: int) -> tuple[float, int]:
    """Seconds for `processes` workers to drain what is due, and how many messages they sent together."""
    context = multiprocessing.get_context("spawn")
    barrier, sent = context.Barrier(processes + 1), context.Queue()
    workers = [context.Process(target=_worker, args=(url, folder, barrier, sent)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    barrier.wait()
    start = time.perf_counter()
    total = 0
    for _ in workers:
        while True:
            try:
                total += sent.get(timeout=1)
                break
            except queue.Empty:
                dead = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a worker process failed (exit codes {dead})") from None
    seconds = time.perf_counter() - start
    for worker in workers:
        worker.join()
    return seconds, total


def run(backend: str, count: int, counts: tuple[int, ...] = (1, 2, 4)) -> list[Figure]:
    figures: list[Figure] = []
    single = None
    for processes in counts:
        with database(backend) as url, tempfile.TemporaryDirectory() as folder:
            clock = SimulatedClock(T0)
            seed_contacts(url, count, clock=clock)
            runtime = build(
                _settings(url), clock=clock, providers={"sms": Outbox()}, definitions=definitions(Path(folder))
            )
            timed(_enroll_all, runtime, count)
            runtime.close()
            seconds, sent = drain_with(url, folder, processes)
            engine = make_engine(url)
            with engine.connect() as connection:
                once = connection.execute(select(func.count()).where(Message.status == "sent")).scalar()
            engine.dispose()
        assert sent == once == count, f"{processes} workers sent {sent}, {once} stored as sent, of {count}"
        rate = count / seconds
        single = single or rate
        figures.append(
            Figure(
                f"{backend}: dispatch by {processes} worker process{'es' if processes > 1 else ''}, {count:,}",
                rate,
                "msg/s",
                "1 worker process" if processes > 1 else None,
                single if processes > 1 else None,
            )
        )
    return figures
