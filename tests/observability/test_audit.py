"""Audit events: one JSON line each on `app.audit`, carrying who/what/where but never a value;
inside a request they carry its id and client, and move the auth counters."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.config import SECRETS
from app.main import create_app
from app.observability import audit
from app.secrets import SecretStore
from app.security.accounts import canonical_email
from app.security.identities import Identities
from tests.conftest import SettingsFactory
from tests.observability.conftest import LogLines
from tests.observability.scraping import scrape, value
from tests.support.app import client_for, lifespan

EMAIL = "Alice@Example.com"
#: What the auth API passes: the keyed hash of the canonical email (app.security.identities).
ACCOUNT = "5f0c0ffee5f0c0ffee5f0c0ffee5f0c0"


@pytest.fixture
async def audited(make_settings: SettingsFactory) -> AsyncIterator[httpx.AsyncClient]:
    """An app with one route per audit helper, as the auth API calls them."""
    # The test client comes from a documentation address; let it scrape /metrics too.
    app: FastAPI = create_app(make_settings(metrics_allowed_networks="203.0.113.0/24"))

    async def fail() -> None:
        audit.login_failed(account=ACCOUNT)

    async def lock() -> None:
        audit.login_locked(account=ACCOUNT)

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
        ("auth_login_failures_total", {"reason": "invalid_credentials"}, 2),
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
    assert failed["account"] == ACCOUNT
    assert failed["request_id"] == "login-attempt-1"
    assert failed["client"] == "203.0.113.7"
    assert failed["reason"] == "invalid_credentials"  # unknown account and wrong password alike
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


async def test_accounts_are_keyed_hashes_of_the_canonical_email(
    make_settings: SettingsFactory,
) -> None:
    """Not a bare SHA-256 (anyone can hash a list of addresses); one hash per account however
    the address is spelled; a different server key gives different hashes."""
    one = await SecretStore.open(make_settings(), SECRETS)
    other = await SecretStore.open(make_settings(jwt_keys=secrets.token_urlsafe(48)), SECRETS)
    try:
        spellings = [
            " Alice@Example.COM ",
            "alice@example.com",
            "\uff41\uff4c\uff49\uff43\uff45@example.com",
        ]  # full-width
        hashes = {Identities(one).account(canonical_email(e)) for e in spellings}
        assert len(hashes) == 1
        (keyed,) = hashes
        assert keyed != hashlib.sha256(b"alice@example.com").hexdigest()[: len(keyed)]
        assert Identities(other).account("alice@example.com") != keyed
    finally:
        await one.aclose()
        await other.aclose()
