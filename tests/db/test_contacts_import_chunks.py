"""A contacts file goes in by chunks: what line-by-line importing wrote, with a fixed number of queries per chunk."""

from __future__ import annotations

import json

from sqlalchemy import select

from outbound.db.models import Consent, Contact
from outbound.ingest.contact_files import IMPORT_CHUNK, import_contacts

from helpers.statements import Statements


def consent(day, granted=True, source="form"):
    return {
        "channel": "sms",
        "purpose": "marketing",
        "granted": granted,
        "at": f"2026-01-{day:02d}T09:00:00+00:00",
        "source": source,
    }


def lines():
    """More than a chunk: ids repeated within and across chunks, repeated and changed consents, bad lines."""
    rows = []
    for i in range(IMPORT_CHUNK + 40):
        row = {
            "external_id": f"c{i % (IMPORT_CHUNK // 2)}",
            "email": f"C{i}@Example.com",
            "attributes": {"n": i},
            "consents": [consent(1 + i % 3)],
        }
        if i % 7 == 0:
            row["phone"] = "12"  # refused: the whole line changes nothing
        if i % 11 == 0:
            row["consents"].append(consent(1 + i % 3, granted=False, source="call"))
        rows.append(json.dumps(row))
    rows[5] = "{not json"
    rows[IMPORT_CHUNK + 3] = json.dumps({"phone": "+12125550123"})
    rows[IMPORT_CHUNK + 9] = json.dumps(
        {"external_id": "new-late", "phone": "+12125550124", "consents": [consent(4), consent(4)]}
    )
    return rows


def stored(session, tenant):
    contacts = {c.id: c for c in session.scalars(select(Contact).where(Contact.tenant_id == tenant.id))}
    return (
        sorted((c.external_id, c.phone, c.email, c.attributes) for c in contacts.values()),
        sorted(
            (contacts[c.contact_id].external_id, c.channel, c.purpose, c.granted, c.at, c.source)
            for c in session.scalars(select(Consent).where(Consent.tenant_id == tenant.id))
        ),
    )


def test_a_file_in_chunks_writes_what_importing_it_line_by_line_writes(session, clock, make_tenant, tmp_path):
    whole, by_line = make_tenant("whole"), make_tenant("by-line")
    path = tmp_path / "contacts.jsonl"
    path.write_text("\n".join(lines()) + "\n")
    report = import_contacts(session, whole, path, clock)
    created = updated = 0
    errors = []
    for number, text in enumerate(lines(), start=1):
        one = tmp_path / f"line-{number}.jsonl"
        one.write_text(text + "\n")
        single = import_contacts(session, by_line, one, clock)
        created, updated = created + single.created, updated + single.updated
        errors += [message.replace("line 1:", f"line {number}:", 1) for message in single.errors]
    assert stored(session, whole) == stored(session, by_line)
    assert (report.created, report.updated, report.errors) == (created, updated, errors)
    assert (report.created, report.updated) == (IMPORT_CHUNK // 2 + 1, 209)  # c0…c249 and new-late
    assert [e.split(":")[0] for e in report.errors][:2] == ["line 1", "line 6"]


def test_the_queries_of_an_import_do_not_grow_with_its_lines(session, clock, make_tenant, tmp_path, engine):
    tenant = make_tenant()

    def run(name, count):
        path = tmp_path / f"{name}.jsonl"
        path.write_text(
            "".join(
                json.dumps(
                    {
                        "external_id": f"{name}{i}",
                        "email": f"{name}{i}@example.com",
                        "consents": [consent(1), consent(2, granted=False)],
                    }
                )
                + "\n"
                for i in range(count)
            )
        )
        with Statements(engine) as statements:
            report = import_contacts(session, tenant, path, clock)
        assert (report.created, report.errors) == (count, [])
        return statements.seen

    assert len(run("few", 20)) == len(run("many", 300))
    assert len(session.scalars(select(Consent)).all()) == 2 * 320
