"""Audit events: one JSON line each on `app.audit`, carrying who/what/where but never a value;
inside a request they carry its id and client, and move the auth counters."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.observability import audit
from tests.conftest import SettingsFactory
from tests.observability.conftest import LogLines
from tests.observability.scraping import scrape, value
from tests.support.app import client_for, lifespan

EMAIL = "Alice@Example.com"


@pytest.fixture
async def audited(make_settings: SettingsFactory) -> AsyncIterator[httpx.AsyncClient]:
    """An app with one route per audit helper, as the auth API calls them."""
    # The test client comes from a documentation address; let it scrape /metrics too.
    app: FastAPI = create_app(make_settings(metrics_allowed_networks="203.0.113.0/24"))

    async def fail() -> None:
        audit.login_failed(email=EMAIL, reason="wrong_password")

    async def lock() -> None:
        audit.login_locked(email=EMAIL)

    async def succeed() -> None:
        audit.login_succeeded(user_id="u-1")

    async def reuse() -> None:
        audit.refresh_reuse_detected(family_id="fam-9", user_id="u-1")

    async def bye() -> None:
        audit.logout(user_id="u-1", family_id="fam-9")

    for path, endpoint in [
        ("/fail", fail),
        ("/lock", lock),
        ("/ok", succeed),
        ("/reuse", reuse),
        ("/logout", bye),
    ]:
        app.add_api_route(path, endpoint, methods=["POST"])
    async with (
        lifespan(app),
        client_for(app, client=("203.0.113.7", 5555)) as client,
    ):
        yield client


async def test_auth_events_move_their_counters(audited: httpx.AsyncClient) -> None:
    before = await scrape(audited)
    for path in ["/fail", "/fail", "/lock", "/ok", "/reuse", "/logout"]:
        assert (await audited.post(path)).status_code == 200
    after = await scrape(audited)
    for name, labels, moved in [
        ("auth_login_failures_total", {"reason": "wrong_password"}, 2),
        ("auth_lockouts_total", {}, 1),
        ("auth_logins_total", {}, 1),
        ("auth_refresh_reuse_detected_total", {}, 1),
        ("auth_logouts_total", {}, 1),
    ]:
        assert value(before, name, **labels) == 0, name
        assert value(after, name, **labels) == moved, name


async def test_audit_lines_identify_without_revealing(
    audited: httpx.AsyncClient, json_logs: LogLines
) -> None:
    await audited.post("/fail", headers={"X-Request-ID": "login-attempt-1"})
    await audited.post("/reuse", headers={"X-Request-ID": "refresh-2"})
    lines = [line for line in json_logs() if line["logger"] == "app.audit"]
    failed = next(line for line in lines if line["event"] == "auth.login_failed")
    assert failed["email_sha256"] == hashlib.sha256(EMAIL.lower().encode()).hexdigest()
    assert failed["request_id"] == "login-attempt-1"
    assert failed["client"] == "203.0.113.7"
    assert failed["reason"] == "wrong_password"
    reuse = next(line for line in lines if line["event"] == "auth.refresh_reuse_detected")
    assert (reuse["family_id"], reuse["user_id"], reuse["request_id"]) == (
        "fam-9",
        "u-1",
        "refresh-2",
    )
    raw = json_logs.raw()  # type: ignore[attr-defined]
    assert EMAIL not in raw
    assert EMAIL.lower() not in raw


async def test_secret_loaded_events_name_source_not_value(
    make_settings: SettingsFactory,
    jwt_secret: str,
    json_logs: LogLines,
) -> None:
    app = create_app(make_settings())
    async with lifespan(app):
        pass
    loaded = [line for line in json_logs() if line.get("event") == "secret.loaded"]
    assert {(e["setting"], e["source"]) for e in loaded} >= {("JWT_KEYS", "env")}
    assert jwt_secret not in json_logs.raw()  # type: ignore[attr-defined]


def test_email_digest_is_normalised() -> None:
    assert audit.email_digest(" Alice@Example.COM ") == audit.email_digest("alice@example.com")
