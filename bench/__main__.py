"""`make bench`: figures for SQLite and PostgreSQL, each against a floor measured in the same run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench import batch, ingest, pipeline, tick, workers
from bench.common import RECORDED, console, print_figures

PARTS = ("pipeline", "workers", "ingest", "tick", "batch", "sdk")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--messages", type=int, default=20_000, help="delayed messages end to end")
    parser.add_argument("--worker-messages", type=int, default=20_000, help="backlog drained by 1, 2 and 4 workers")
    parser.add_argument("--sdk-messages", type=int, default=2_000, help="messages through the real SDK")
    parser.add_argument("--events", type=int, default=2_000, help="events over HTTP and by import")
    parser.add_argument(
        "--backlog",
        type=int,
        nargs="+",
        default=[10_000, 10_000_000],
        help="waiting messages for the dispatch tick (smaller for a quick run: --backlog 10000 100000)",
    )
    parser.add_argument("--show-plan", action="store_true", help="print the claim's query plan for each backlog")
    parser.add_argument("--batch-contacts", type=int, default=1_000_000, help="contacts of the batch campaign")
    parser.add_argument(
        "--no-drain",
        action="store_true",
        help="batch campaign: audience → enrolled only, without the dispatcher's drain",
    )
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS), help="run only these figures")
    parser.add_argument("--json", type=Path, help="also write every figure to this file (to compare two runs)")
    args = parser.parse_args()

    for backend in args.backends:
        console.rule(f"[bold]{backend}")
        if "pipeline" in args.only:
            print_figures("delayed messages", pipeline.run(backend, args.messages))
        if "workers" in args.only:
            print_figures("scale-out: worker processes", workers.run(backend, args.worker_messages))
        if "ingest" in args.only:
            print_figures("event ingest", ingest.run(backend, args.events))
        if "tick" in args.only:
            print_figures("one dispatch tick", tick.run(backend, args.backlog, show_plan=args.show_plan))
        if "batch" in args.only:
            print_figures(
                f"batch campaign over {args.batch_contacts:,} contacts",
                batch.run(backend, args.batch_contacts, drain=not args.no_drain),
            )
    if "sdk" in args.only:
        console.rule("[bold]providers")
        print_figures("SDK path", pipeline.sdk_figures(args.sdk_messages))

    if args.json:
        figures = [
            {
                "table": t,
                "name": f.name,
                "value": f.value,
                "unit": f.unit,
                "floor_name": f.floor_name,
                "floor": f.floor,
                "ratio": f.ratio,
            }
            for t, f in RECORDED
        ]
        args.json.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
