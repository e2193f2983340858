"""Contacts: upsert, normalisation, the consent ledger, and JSONL/CSV import."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from outbound.addresses import address_hash, default_region, normalise_email, normalise_phone
from outbound.db.models import Consent, Contact
from outbound.errors import InvalidInput
from outbound.ingest.contact_files import import_contacts
from outbound.ingest.contacts import ConsentIn, ContactIn, record_consent, upsert_contact

KST = timezone(timedelta(hours=9))


def contacts_of(session, tenant):
    return {c.external_id: c for c in session.scalars(select(Contact).where(Contact.tenant_id == tenant.id))}


def ledger(session, contact):
    return session.scalars(select(Consent).where(Consent.contact_id == contact.id).order_by(Consent.id)).all()


def test_upsert_overwrites_given_fields_and_keeps_absent_ones(session, clock, make_tenant):
    tenant = make_tenant()
    first = upsert_contact(
        session,
        tenant,
        ContactIn(
            external_id="c1", phone="+12015550123", email="a@example.com", locale="en", attributes={"tier": "gold"}
        ),
        clock,
    )
    created_at = first.updated_at
    clock.advance(timedelta(hours=1))
    again = upsert_contact(
        session, tenant, ContactIn(external_id="c1", email="B@Example.com ", attributes={"city": "Austin"}), clock
    )
    assert again.id == first.id
    assert again.email == "b@example.com"
    assert again.phone == "+12015550123"
    assert again.locale == "en"
    assert again.attributes == {"tier": "gold", "city": "Austin"}
    assert again.updated_at == created_at + timedelta(hours=1)


def test_blank_fields_count_as_absent(session, clock, make_tenant):
    tenant = make_tenant()
    upsert_contact(session, tenant, ContactIn(external_id="c1", email="a@example.com"), clock)
    contact = upsert_contact(session, tenant, ContactIn(external_id="c1", email=" ", phone=""), clock)
    assert (contact.email, contact.phone) == ("a@example.com", None)


def test_upsert_without_changes_leaves_updated_at(session, clock, make_tenant):
    tenant = make_tenant()
    contact = upsert_contact(session, tenant, ContactIn(external_id="c1", locale="en"), clock)
    clock.advance(timedelta(hours=1))
    upsert_contact(session, tenant, ContactIn(external_id="c1", locale="en"), clock)
    assert contact.updated_at == clock.now() - timedelta(hours=1)


def test_a_phone_without_plus_is_read_in_the_tenants_region(session, clock, make_tenant):
    kr = make_tenant("shop-kr", jurisdiction="KR", timezone="Asia/Seoul", locale="ko")
    us = make_tenant("shop-us")
    assert (
        upsert_contact(session, kr, ContactIn(external_id="k", phone="010-1234-5678"), clock).phone == "+821012345678"
    )
    assert (
        upsert_contact(session, us, ContactIn(external_id="u", phone="(201) 555-0123"), clock).phone == "+12015550123"
    )


def test_a_contacts_own_jurisdiction_decides_the_region_of_a_national_number(session, clock, make_tenant):
    us = make_tenant("shop-us")
    contact = upsert_contact(session, us, ContactIn(external_id="k", jurisdiction="KR", phone="01012345678"), clock)
    assert contact.phone == "+821012345678"


def test_the_default_region_falls_back_to_the_time_zones_country():
    assert default_region("KR", "America/New_York") == "KR"
    assert default_region("EU", "Europe/Berlin") == "DE"
    assert default_region("default", "Etc/UTC") is None


def test_an_invalid_phone_is_refused_naming_the_field_and_the_value(session, clock, make_tenant):
    tenant = make_tenant()
    with pytest.raises(InvalidInput) as caught:
        upsert_contact(session, tenant, ContactIn(external_id="c1", phone="12345"), clock)
    assert caught.value.field == "contact.phone"
    assert "'12345'" in str(caught.value)
    assert contacts_of(session, tenant) == {}


def test_a_national_number_without_a_region_is_refused():
    with pytest.raises(InvalidInput, match="country code"):
        normalise_phone("2015550123", None)


def test_emails_are_trimmed_lower_cased_and_checked():
    assert normalise_email("  Ann@Example.COM ") == "ann@example.com"
    for bad in ("ann", "ann@example", "a@b@example.com", "@example.com", "ann@.com", "a nn@example.com"):
        with pytest.raises(InvalidInput) as caught:
            normalise_email(bad)
        assert caught.value.field == "contact.email"


def test_an_unknown_time_zone_is_refused_by_the_contact_model():
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        ContactIn(external_id="c1", timezone="Mars/Olympus")


def test_address_hash_is_the_same_however_the_address_is_written():
    assert address_hash("email", " Ann@Example.com") == address_hash("email", "ann@example.com")
    assert address_hash("sms", "+1 201-555-0123") == address_hash("sms", "+12015550123")
    assert address_hash("sms", "+12015550123") != address_hash("email", "ann@example.com")
    assert len(address_hash("sms", "+12015550123")) == 64


def test_a_contact_keeps_the_hash_of_its_phone_through_every_change(session, clock, make_tenant):
    from outbound.ingest.erasure import erase_contact

    tenant = make_tenant()
    contact = upsert_contact(session, tenant, ContactIn(external_id="c1", phone="+1 (201) 555-0123"), clock)
    assert contact.phone_hash == address_hash("sms", "+12015550123")
    upsert_contact(session, tenant, ContactIn(external_id="c1", phone="+12025550143"), clock)
    session.flush()
    stored = session.execute(select(Contact.phone, Contact.phone_hash).where(Contact.id == contact.id)).one()
    assert stored == ("+12025550143", address_hash("sms", "+12025550143"))
    erase_contact(session, tenant, "c1", clock.now())
    session.flush()
    assert session.execute(select(Contact.phone_hash).where(Contact.id == contact.id)).scalar() is None


def test_address_hash_still_hashes_a_number_no_one_can_parse():
    assert address_hash("sms", "+1 555") == address_hash("sms", "+1555")


def test_consents_are_appended_to_the_ledger_and_old_entries_never_change(session, clock, make_tenant):
    tenant = make_tenant()
    contact = upsert_contact(session, tenant, ContactIn(external_id="c1"), clock)
    granted_at = datetime(2026, 1, 5, 9, 0, tzinfo=KST)
    record_consent(
        session,
        tenant,
        contact,
        ConsentIn(
            channel="sms",
            purpose="marketing",
            granted=True,
            at=granted_at,
            source="checkout form",
            text="Yes, send me offers by SMS",
        ),
        clock,
    )
    record_consent(
        session,
        tenant,
        contact,
        ConsentIn(channel="sms", purpose="marketing", granted=False, at=granted_at + timedelta(days=30), source="STOP"),
        clock,
    )
    first, second = ledger(session, contact)
    assert (first.granted, first.at, first.source, first.text) == (
        True,
        granted_at.astimezone(UTC),
        "checkout form",
        "Yes, send me offers by SMS",
    )
    assert (second.granted, second.source) == (False, "STOP")
    assert first.recorded_at == clock.now()


def test_the_same_consent_recorded_twice_is_one_ledger_entry(session, clock, make_tenant):
    tenant = make_tenant()
    contact = upsert_contact(session, tenant, ContactIn(external_id="c1"), clock)
    consent = ConsentIn(channel="email", purpose="marketing", granted=True, at=clock.now(), source="form")
    assert (
        record_consent(session, tenant, contact, consent, clock).id
        == record_consent(session, tenant, contact, consent, clock).id
    )
    assert len(ledger(session, contact)) == 1


def test_a_consent_time_without_an_offset_is_refused():
    with pytest.raises(ValueError, match="at"):
        ConsentIn(channel="sms", purpose="marketing", granted=True, at="2026-01-05T09:00:00")


def write_lines(path, rows):
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def test_jsonl_import_reports_the_bad_line_and_imports_the_rest(session, clock, make_tenant, tmp_path):
    tenant = make_tenant("shop-kr", jurisdiction="KR", timezone="Asia/Seoul", locale="ko")
    consent = {
        "channel": "sms",
        "purpose": "marketing",
        "granted": True,
        "night": True,
        "at": "2026-01-05T09:00:00+09:00",
        "source": "signup",
        "text": "광고 수신 동의",
    }
    path = write_lines(
        tmp_path / "contacts.jsonl",
        [
            {"external_id": "c1", "phone": "01012345678", "consents": [consent]},
            {"external_id": "c2", "phone": "12"},
            "{not json",
            "",
            {"external_id": "c3", "email": "c3@example.com", "timezone": "Asia/Seoul"},
            {"phone": "01012345678"},
        ],
    )
    report = import_contacts(session, tenant, path, clock)
    assert report.created == 2 and report.updated == 0
    assert report.errors[0] == "line 2: phone: not a valid phone number: '12'"
    assert report.errors[1].startswith("line 3: invalid JSON")
    assert report.errors[2] == "line 6: external_id: Field required"
    assert len(report.errors) == 3
    stored = contacts_of(session, tenant)
    assert set(stored) == {"c1", "c3"}
    (entry,) = ledger(session, stored["c1"])
    assert (entry.channel, entry.purpose, entry.granted, entry.night, entry.text) == (
        "sms",
        "marketing",
        True,
        True,
        "광고 수신 동의",
    )


def test_a_line_with_a_bad_consent_leaves_neither_the_contact_nor_its_consents(session, clock, make_tenant, tmp_path):
    tenant = make_tenant()
    path = write_lines(
        tmp_path / "contacts.jsonl",
        [
            {
                "external_id": "c1",
                "phone": "+1 201 555 01",
                "consents": [
                    {"channel": "sms", "purpose": "marketing", "granted": True, "at": "2026-01-05T09:00:00+00:00"}
                ],
            },
            {
                "external_id": "c2",
                "consents": [
                    {"channel": "fax", "purpose": "marketing", "granted": True, "at": "2026-01-05T09:00:00+00:00"}
                ],
            },
        ],
    )
    report = import_contacts(session, tenant, path, clock)
    assert report.created == 0
    assert report.errors[0].startswith("line 1: phone:")
    assert report.errors[1].startswith("line 2: consents.0.channel:")
    assert contacts_of(session, tenant) == {}
    assert session.scalars(select(Consent)).all() == []


def test_importing_again_updates_instead_of_creating_and_keeps_one_ledger_entry(session, clock, make_tenant, tmp_path):
    tenant = make_tenant()
    consent = {"channel": "email", "purpose": "marketing", "granted": True, "at": "2026-01-05T09:00:00+00:00"}
    path = write_lines(tmp_path / "contacts.jsonl", [{"external_id": "c1", "locale": "en", "consents": [consent]}])
    assert import_contacts(session, tenant, path, clock).created == 1
    write_lines(path, [{"external_id": "c1", "locale": "es", "consents": [consent]}])
    report = import_contacts(session, tenant, path, clock)
    assert (report.created, report.updated) == (0, 1)
    contact = contacts_of(session, tenant)["c1"]
    assert contact.locale == "es"
    assert len(ledger(session, contact)) == 1


def test_a_bad_line_changes_nothing_of_a_contact_stored_before(session, clock, make_tenant, tmp_path):
    tenant = make_tenant()
    path = write_lines(
        tmp_path / "contacts.jsonl",
        [
            {"external_id": "c1", "email": "old@example.com"},
            {"external_id": "c1", "email": "new@example.com", "phone": "+1 555"},
        ],
    )
    report = import_contacts(session, tenant, path, clock)
    assert (report.created, report.updated) == (1, 0)
    assert report.errors[0].startswith("line 2: phone:")
    assert contacts_of(session, tenant)["c1"].email == "old@example.com"


CSV = """external_id,phone,email,timezone,consent_sms_marketing,consent_email_marketing,consent_at,consent_source,tier
c1,(201) 555-0123,ONE@example.com,America/Chicago,true,no,2026-01-05T09:00:00-05:00,web form,gold
c2,999,two@example.com,,,,,,
c3,,three@example.com,,yes,,,,
c4,,four@example.com,,,,,,silver
"""


def test_csv_import_records_consent_columns_and_reports_the_bad_lines(session, clock, make_tenant, tmp_path):
    tenant = make_tenant()
    path = tmp_path / "contacts.csv"
    path.write_text(CSV)
    report = import_contacts(session, tenant, path, clock)
    assert report.errors == [
        "line 3: phone: not a valid phone number: '999'",
        "line 4: consent_at: required when a consent column is filled",
    ]
    assert report.created == 2
    stored = contacts_of(session, tenant)
    assert set(stored) == {"c1", "c4"}
    assert (stored["c1"].phone, stored["c1"].email, stored["c1"].timezone) == (
        "+12015550123",
        "one@example.com",
        "America/Chicago",
    )
    assert stored["c1"].attributes == {"tier": "gold"}
    entries = {(e.channel, e.purpose): e for e in ledger(session, stored["c1"])}
    assert entries[("sms", "marketing")].granted is True
    assert entries[("email", "marketing")].granted is False
    assert entries[("sms", "marketing")].source == "web form"
    assert entries[("sms", "marketing")].at == datetime(2026, 1, 5, 14, 0, tzinfo=UTC)
    assert ledger(session, stored["c4"]) == []


def test_a_csv_with_an_unknown_consent_column_is_refused_before_any_row(session, clock, make_tenant, tmp_path):
    tenant = make_tenant()
    path = tmp_path / "contacts.csv"
    path.write_text("external_id,consent_sms_marketting\nc1,true\n")
    with pytest.raises(InvalidInput, match="line 1: unknown consent column 'consent_sms_marketting'"):
        import_contacts(session, tenant, path, clock)
    assert contacts_of(session, tenant) == {}


def test_a_file_of_another_kind_is_refused(session, clock, make_tenant, tmp_path):
    tenant = make_tenant()
    path = tmp_path / "contacts.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(InvalidInput, match="use a .jsonl or .csv file"):
        import_contacts(session, tenant, path, clock)
