"""What every answer carries for the browser's safety: no sniffing, no referrer (links carry tokens), no
framing, a content security policy on rendered pages, HSTS behind https; and the session cookie's flags."""

from __future__ import annotations

import dataclasses

import pytest
from fastapi.testclient import TestClient

from outbound.web.app import create_app
from outbound.web.security import CSP, redacted_path


@pytest.fixture
def client(runtime):
    with TestClient(create_app(runtime, on_event=None), base_url="https://ob.example") as client:
        yield client


@pytest.mark.parametrize("path", ["/agent/login", "/u/not-a-token", "/s/not-a-token/5", "/healthz", "/v1/events"])
def test_every_answer_carries_the_safety_headers(client, path):
    answer = client.get(path)
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["content-security-policy"] == CSP
    assert answer.headers["strict-transport-security"].startswith("max-age=")


def test_the_api_documentation_keeps_its_own_scripts(client):
    answer = client.get("/docs")
    assert answer.status_code == 200 and "content-security-policy" not in answer.headers


def test_no_hsts_when_the_base_url_is_plain_http(runtime):
    local = dataclasses.replace(runtime, settings=runtime.settings.model_copy(update={"base_url": "http://127.0.0.1"}))
    with TestClient(create_app(local, on_event=None)) as client:
        assert "strict-transport-security" not in client.get("/healthz").headers


def test_the_session_cookie_is_httponly_samesite_and_secure_behind_https(client):
    cookie = client.get("/agent/login").headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie


@pytest.mark.parametrize(
    ("path", "shown"),
    [("/u/IXUuMS4xMDA.abc_DEF-123", "/u/…"), ("/s/IXMuMS4yMg.xyz/5", "/s/…/5"), ("/v1/events", "/v1/events")],
)
def test_link_tokens_are_left_out_of_logged_paths(path, shown):
    assert redacted_path(path) == shown
