"""Dispatch: claim due messages, ask the compliance gate, render, send, record.

The modules in the order of a tick: `claim` (the due messages, locked), `context` (what the gate and the
templates read, a query per kind), `decide` (the gate's answer for each message) and `render` (an allowed
message's text), then the providers, then `record` (their answers; `expire_sending`). `dispatcher` runs
ticks of these, pipelined; `report` is what a tick did. `ratelimit` and `breaker` serve the decision.
Every statement dispatch runs is in its store, `outbound.db.dispatch`.
"""
