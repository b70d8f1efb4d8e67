"""The auth API's events, over HTTP: each moves its counter and writes one audit line that
identifies the account (id, or a digest of the email) without the email, password or token."""

from __future__ import annotations

import hashlib

from tests.api.auth_helpers import PASSWORD, login, logout, new_email, refresh, register
from tests.conftest import SettingsFactory
from tests.observability.conftest import LogLines
from tests.observability.scraping import Samples, scrape, value
from tests.support.app import running_client


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)


async def test_login_refresh_reuse_logout_and_lockout_are_counted_and_audited(
    make_settings: SettingsFactory,
    json_logs: LogLines,
) -> None:
    async with running_client(make_settings(login_max_failures=2)) as client:
        before = await scrape(client)
        email = new_email()
        await register(client, email)
        assert (await login(client, new_email())).status_code == 401  # unknown account
        assert (await login(client, email, "wrong password!")).status_code == 401
        assert (await login(client, email, "wrong password!")).status_code == 401
        assert (await login(client, email)).status_code == 429  # past the limit
        other = new_email()
        await register(client, other)
        signed = await login(client, other)
        assert signed.status_code == 200
        tokens = signed.json()
        rotated = await refresh(client, tokens["refresh_token"])
        assert rotated.status_code == 200
        reused = await refresh(client, tokens["refresh_token"])
        assert reused.status_code == 401
        again = await login(client, other)
        out = await logout(client, again.json()["access_token"])
        assert out.status_code == 204
        after = await scrape(client)

    # One label for unknown account and wrong password: a scrape must not tell them apart.
    assert delta(after, before, "auth_login_failures_total", reason="invalid_credentials") == 3
    assert delta(after, before, "auth_lockouts_total") == 1
    assert delta(after, before, "auth_logins_total") == 2
    assert delta(after, before, "auth_refresh_reuse_detected_total") == 1
    assert delta(after, before, "auth_logouts_total") == 1
    assert (
        delta(
            after,
            before,
            "http_requests_total",
            method="POST",
            route="/api/v1/auth/login",
            status="401",
        )
        == 3
    )

    audit = [line for line in json_logs() if line["logger"] == "app.audit"]
    events = [line["event"] for line in audit if line["event"].startswith("auth.")]
    assert events == [
        "auth.login_failed",
        "auth.login_failed",
        "auth.login_failed",
        "auth.login_locked",
        "auth.login_succeeded",
        "auth.refresh_reuse_detected",
        "auth.login_succeeded",
        "auth.logout",
    ]
    failed = [line for line in audit if line["event"] == "auth.login_failed"]
    assert {line["reason"] for line in failed} == {"invalid_credentials"}
    accounts = [line["account"] for line in failed]
    assert accounts[1] == accounts[2] != accounts[0], "one keyed hash per account"
    assert hashlib.sha256(email.encode()).hexdigest()[:32] not in accounts
    assert "user_id" not in failed[1], "a failed login does not confirm that the user exists"
    reuse = next(line for line in audit if line["event"] == "auth.refresh_reuse_detected")
    assert reuse["family_id"] == tokens["refresh_token"].split(".")[0]
    assert all(
        "request_id" in line and "client" in line
        for line in audit
        if line["event"].startswith("auth.")
    )
    raw = json_logs.raw()  # type: ignore[attr-defined]
    for needle in (
        email,
        other,
        PASSWORD,
        "wrong password!",
        tokens["refresh_token"],
        tokens["access_token"],
        rotated.json()["refresh_token"],
    ):
        assert needle not in raw
