"""The secret that signs links and sessions: never shipped, made and kept by a local install, required of
any other, rotated without breaking the links already sent."""

from __future__ import annotations

import secrets

import pytest

from outbound.bootstrap import keyring_for
from outbound.config import Settings
from outbound.errors import ConfigurationError
from outbound.signing import OLD_DEFAULT_SECRET, TokenKind


def _settings(db_url: str, **values) -> Settings:
    return Settings(database_url=db_url, **{"secret_key": None, **values})


def test_no_secret_ships_in_the_source_settings_have_none_by_default(monkeypatch):
    monkeypatch.delenv("OUTBOUND_SECRET_KEY", raising=False)
    assert Settings().secret_key is None


def test_a_local_install_makes_its_secret_once_and_keeps_it_across_restarts(db_url, factory, clock):
    settings = _settings(db_url, base_url="http://localhost:8000")
    first = keyring_for(settings, factory, clock)
    token = first.sign(TokenKind.UNSUBSCRIBE, [1, 2, "email"])
    again = keyring_for(settings, factory, clock)  # a restart: the same database, a new process
    assert again.current == first.current
    assert again.read(TokenKind.UNSUBSCRIBE, token, clock.now()) == ["1", "2", "email"]
    assert len(first.current) >= 48 and first.current != OLD_DEFAULT_SECRET


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:8000", "http://[::1]:8000", "http://shop.localhost"])
def test_every_loopback_address_counts_as_local(db_url, factory, clock, base_url):
    assert keyring_for(_settings(db_url, base_url=base_url), factory, clock).current


@pytest.mark.parametrize("base_url", ["https://outbound.example.com", "http://10.0.0.5:8000", "http://0.0.0.0:8000"])
def test_an_install_that_links_elsewhere_refuses_to_start_without_a_secret(db_url, factory, clock, base_url):
    with pytest.raises(ConfigurationError, match="OUTBOUND_SECRET_KEY is not set") as refused:
        keyring_for(_settings(db_url, base_url=base_url), factory, clock)
    assert "token_urlsafe" in str(refused.value)


def test_the_secret_that_once_shipped_in_the_source_is_refused(db_url, factory, clock):
    with pytest.raises(ConfigurationError, match="once shipped"):
        keyring_for(_settings(db_url, secret_key=OLD_DEFAULT_SECRET), factory, clock)


def test_a_short_secret_is_refused(db_url, factory, clock):
    with pytest.raises(ConfigurationError, match="at least 32"):
        keyring_for(_settings(db_url, secret_key="hunter2"), factory, clock)


def test_rotation_keeps_the_links_signed_with_the_previous_secret(db_url, factory, clock):
    old, new = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    before = keyring_for(_settings(db_url, secret_key=old, base_url="https://o.example"), factory, clock)
    link = before.sign(TokenKind.SURVEY, [4, 99])
    rotated = keyring_for(
        _settings(db_url, secret_key=new, secret_key_fallbacks=f" {old} ,", base_url="https://o.example"),
        factory,
        clock,
    )
    assert rotated.read(TokenKind.SURVEY, link, clock.now()) == ["4", "99"]
    assert rotated.read(TokenKind.SURVEY, rotated.sign(TokenKind.SURVEY, [4, 99]), clock.now()) == ["4", "99"]
    retired = keyring_for(_settings(db_url, secret_key=new, base_url="https://o.example"), factory, clock)
    assert retired.read(TokenKind.SURVEY, link, clock.now()) is None


def test_printed_settings_show_no_secret_or_credential():
    secret, token, key = secrets.token_urlsafe(32), "twilio-token-" + secrets.token_hex(8), "SG." + secrets.token_hex(8)
    settings = Settings(secret_key=secret, twilio_auth_token=token, sendgrid_api_key=key, secret_key_fallbacks=secret)
    shown = repr(settings) + str(settings) + str(settings.model_dump())
    assert secret not in shown and token not in shown and key not in shown


def test_no_statement_parameter_reaches_a_log_line_or_an_error_text(engine, caplog):
    import logging

    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from outbound.db.direct import on_driver

    phone = "+12025550143"
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    engine.echo = True  # the most an operator can turn on
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT :phone"), {"phone": phone})
            with pytest.raises(DBAPIError) as raised:
                connection.execute(text("SELECT * FROM no_such_table WHERE x = :phone"), {"phone": phone})
            assert phone not in str(raised.value)
            with pytest.raises(DBAPIError) as raised:
                on_driver(connection, "SELECT * FROM no_such_table WHERE x = ?", (phone,))
            assert phone not in str(raised.value)
    finally:
        engine.echo = False
    assert caplog.records and phone not in caplog.text
