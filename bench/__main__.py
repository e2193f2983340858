"""`make bench`: figures for SQLite and PostgreSQL, each against a floor measured in the same run."""

from __future__ import annotations

import argparse

from bench import ingest, pipeline, tick
from bench.common import console, print_figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--messages", type=int, default=20_000, help="delayed messages end to end")
    parser.add_argument("--sdk-messages", type=int, default=2_000, help="messages through the real SDK")
    parser.add_argument("--events", type=int, default=2_000, help="events over HTTP and by import")
    parser.add_argument("--backlog", type=int, nargs="+", default=[10_000, 1_000_000],
                        help="waiting messages for the dispatch tick (the issue asks for 10,000 and 10,000,000)")
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    args = parser.parse_args()

    for backend in args.backends:
        console.rule(f"[bold]{backend}")
        print_figures("delayed messages", pipeline.run(backend, args.messages))
        print_figures("event ingest", ingest.run(backend, args.events))
        print_figures("one dispatch tick", tick.run(backend, args.backlog))
    console.rule("[bold]providers")
    print_figures("SDK path", pipeline.sdk_figures(args.sdk_messages))


if __name__ == "__main__":
    main()
