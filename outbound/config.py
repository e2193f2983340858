"""Settings read from OUTBOUND_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything an operator can set, each from an `OUTBOUND_<NAME>` variable.

    Secrets and credentials are `SecretStr`: shown as `**********` wherever settings are printed, logged
    or reported in a traceback; their value is read only where it is used.
    """

    model_config = SettingsConfigDict(env_prefix="OUTBOUND_", extra="ignore")

    database_url: str = "sqlite:///outbound.db"
    definitions: Path = Path(".")
    base_url: str = "http://localhost:8000"
    # Signs links and sessions, each kind of token with its own key derived from it (outbound.signing).
    # Unset: a local install (base URL on a loopback address) makes one and keeps it in its database;
    # any other install refuses to start.
    secret_key: SecretStr | None = None
    # Previous secrets, comma-separated: they no longer sign, but what they signed is still accepted.
    secret_key_fallbacks: SecretStr = SecretStr("")

    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base: str | None = None  # e.g. a loopback fake in tests

    sendgrid_api_key: SecretStr | None = None
    sendgrid_from_email: str | None = None
    sendgrid_api_base: str | None = None
    sendgrid_webhook_public_key: str | None = None

    dispatch_batch_size: int = 500
    # Provider requests in flight at once per provider (a bounded pool of sending threads); 1 sends one by one.
    provider_concurrency: int = 8
    dispatch_interval_seconds: float = 5.0
    sending_expiry_minutes: int = 15
    # Messages per second per sender (number, messaging service, email domain); ≤ 0: no limit.
    # A tenant's `sms_rate_per_second` / `email_rate_per_second` setting overrides these.
    sms_rate_per_second: float = 10.0
    email_rate_per_second: float = 100.0
