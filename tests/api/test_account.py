"""SPEC section 3, "Accounts, roles and browser clients": password change, reset by mail,
email verification and deleting one's own account, over HTTP, with a real SMTP server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.api.auth_helpers import (
    PASSWORD,
    bearer,
    login,
    me,
    new_email,
    refresh,
    register,
    signed_in,
)
from tests.conftest import SettingsFactory
from tests.support.app import client_for, resources, running_app
from tests.support.smtp import SmtpTestServer, smtp_server

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def mail_server() -> Iterator[SmtpTestServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
async def mailing(
    make_settings: SettingsFactory, mail_server: SmtpTestServer
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app that mails through the real local SMTP server."""
    settings = make_settings(smtp_url=mail_server.url, public_base_url="https://app.example.test")
    async with running_app(settings) as app, client_for(app) as client:
        yield client


async def _forgot(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post("/api/v1/auth/password/forgot", json={"email": email})


# ---- password change -------------------------------------------------------------------------


async def test_password_change_returns_a_new_pair_and_ends_every_earlier_session(
    client: httpx.AsyncClient,
) -> None:
    email, first = await signed_in(client)
    second = (await login(client, email)).json()  # another device
    changed = await client.post(
        "/api/v1/auth/password/change",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(first["access_token"]),
    )
    assert changed.status_code == 200, changed.text
    fresh = changed.json()
    assert changed.headers["Cache-Control"] == "no-store"
    assert (await me(client, fresh["access_token"])).status_code == 200
    for old in (first, second):
        assert (await me(client, old["access_token"])).status_code == 401
        assert (await refresh(client, old["refresh_token"])).status_code == 401
    assert (await login(client, email)).status_code == 401
    assert (await login(client, email, NEW_PASSWORD)).status_code == 200


async def test_a_wrong_current_password_is_a_failed_login(make_settings: SettingsFactory) -> None:
    async with running_app(make_settings(login_max_failures=2)) as app, client_for(app) as client:
        _, tokens = await signed_in(client)
        statuses = [
            (
                await client.post(
                    "/api/v1/auth/password/change",
                    json={"current_password": "not it at all", "new_password": NEW_PASSWORD},
                    headers=bearer(tokens["access_token"]),
                )
            ).status_code
            for _ in range(3)
        ]
        assert statuses == [401, 401, 429]
        invalid = await client.post(
            "/api/v1/auth/password/change",
            json={"current_password": PASSWORD, "new_password": "p4ss"},
            headers=bearer(tokens["access_token"]),
        )
        assert invalid.status_code == 422
        assert "p4ss" not in invalid.text


# ---- reset by mail ---------------------------------------------------------------------------


async def test_forgot_answers_the_same_for_any_address_and_mails_only_accounts(
    mailing: httpx.AsyncClient, mail_server: SmtpTestServer
) -> None:
    email = new_email()
    await register(mailing, email)
    timings, answers = [], []
    for address in (email, new_email(), f"  {email.upper()} ", "not-an-address"):
        started = time.monotonic()
        answer = await _forgot(mailing, address)
        timings.append(time.monotonic() - started)
        answers.append((answer.status_code, answer.json()))
    assert len(set(map(str, answers))) == 1, answers
    assert answers[0][0] == 202
    mails = await mail_server.await_messages(2)
    await asyncio.sleep(0.3)
    assert len(mail_server.messages) == 2, "only the real account got mail (twice)"
    assert {tuple(m.recipients) for m in mails} == {(email,)}
    text = mails[0].text
    assert "https://app.example.test/reset-password#token=" in text
    # The answer does not wait for the lookup or the mail: no timing tells accounts apart.
    assert max(timings) < 3.0, timings  # generous for a busy machine; a slow mail server adds 0


async def test_a_reset_token_works_once_and_ends_every_session(
    mailing: httpx.AsyncClient, mail_server: SmtpTestServer
) -> None:
    email, tokens = await signed_in(mailing)
    assert (await _forgot(mailing, email)).status_code == 202
    token = (await mail_server.await_messages(1))[0].token()
    reset = await mailing.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert reset.status_code == 204, reset.text
    assert (await me(mailing, tokens["access_token"])).status_code == 401
    assert (await refresh(mailing, tokens["refresh_token"])).status_code == 401
    assert (await login(mailing, email, NEW_PASSWORD)).status_code == 200
    again = await mailing.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": "yet another one"}
    )
    assert again.status_code == 400
    assert token not in again.text
    for bogus in ("x" * 43, "short"):
        answer = await mailing.post(
            "/api/v1/auth/password/reset", json={"token": bogus, "new_password": NEW_PASSWORD}
        )
        assert answer.status_code == 400


async def test_an_expired_reset_token_is_refused(
    make_settings: SettingsFactory, mail_server: SmtpTestServer
) -> None:
    settings = make_settings(smtp_url=mail_server.url, password_reset_ttl_seconds=1)
    async with running_app(settings) as app, client_for(app) as client:
        email, _ = await signed_in(client)
        await _forgot(client, email)
        token = (await mail_server.await_messages(1))[0].token()
        await asyncio.sleep(1.5)
        answer = await client.post(
            "/api/v1/auth/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
        )
        assert answer.status_code == 400
        assert (await login(client, email)).status_code == 200


async def test_forgot_has_a_per_ip_limit(
    make_settings: SettingsFactory, mail_server: SmtpTestServer
) -> None:
    settings = make_settings(smtp_url=mail_server.url, rate_limit_password_reset="2/hour")
    async with running_app(settings) as app, client_for(app) as client:
        statuses = [(await _forgot(client, new_email())).status_code for _ in range(3)]
        assert statuses == [202, 202, 429]


# ---- email verification ----------------------------------------------------------------------


async def test_verification_by_mail(
    mailing: httpx.AsyncClient, mail_server: SmtpTestServer
) -> None:
    email, tokens = await signed_in(mailing)
    assert (await me(mailing, tokens["access_token"])).json()["email_verified"] is False
    requested = await mailing.post(
        "/api/v1/auth/verify/request", headers=bearer(tokens["access_token"])
    )
    assert requested.status_code == 202
    mail = (await mail_server.await_messages(1))[0]
    assert mail.recipients == [email]
    token = mail.token()
    assert "/verify-email#token=" in mail.text
    assert (await mailing.post("/api/v1/auth/verify", json={"token": token})).status_code == 204
    # /users/me answers from each replica's user cache, which the change reaches by NOTIFY
    # within milliseconds: poll briefly rather than race it.
    deadline = asyncio.get_running_loop().time() + 5
    while not (await me(mailing, tokens["access_token"])).json()["email_verified"]:
        assert asyncio.get_running_loop().time() < deadline, "the verification never showed"
        await asyncio.sleep(0.02)
    assert (await mailing.post("/api/v1/auth/verify", json={"token": token})).status_code == 400
    assert (await mailing.post("/api/v1/auth/verify/request")).status_code == 401


async def test_a_reset_token_does_not_verify_and_a_verify_token_does_not_reset(
    mailing: httpx.AsyncClient, mail_server: SmtpTestServer
) -> None:
    _, tokens = await signed_in(mailing)
    await mailing.post("/api/v1/auth/verify/request", headers=bearer(tokens["access_token"]))
    verify_token = (await mail_server.await_messages(1))[0].token()
    answer = await mailing.post(
        "/api/v1/auth/password/reset", json={"token": verify_token, "new_password": NEW_PASSWORD}
    )
    assert answer.status_code == 400


async def test_login_requires_a_verified_email_when_configured(
    make_settings: SettingsFactory, mail_server: SmtpTestServer
) -> None:
    settings = make_settings(smtp_url=mail_server.url, require_verified_email=True)
    async with running_app(settings) as app, client_for(app) as client:
        email = new_email()
        await register(client, email)
        refused = await login(client, email)
        assert refused.status_code == 403
        assert (await login(client, email, "wrong password!")).status_code == 401
        assert (await login(client, new_email())).status_code == 401
        database = resources(app).sessionmaker
        from sqlalchemy import update

        from app.models import User

        async with database() as session:
            await session.execute(
                update(User).where(User.email == email).values(email_verified=True)
            )
            await session.commit()
        assert (await login(client, email)).status_code == 200


# ---- deleting one's own account --------------------------------------------------------------


async def test_delete_me_needs_the_password_and_removes_what_it_owns(
    client: httpx.AsyncClient,
) -> None:
    email, tokens = await signed_in(client)
    headers = bearer(tokens["access_token"])
    item = await client.post("/api/v1/items", json={"title": "mine"}, headers=headers)
    assert item.status_code == 201
    wrong = await client.request(
        "DELETE", "/api/v1/users/me", json={"password": "not my password"}, headers=headers
    )
    assert wrong.status_code == 401
    deleted = await client.request(
        "DELETE", "/api/v1/users/me", json={"password": PASSWORD}, headers=headers
    )
    assert deleted.status_code == 204
    assert (await me(client, tokens["access_token"])).status_code == 401
    assert (await refresh(client, tokens["refresh_token"])).status_code == 401
    assert (await login(client, email)).status_code == 401
    again = await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert again.status_code == 201, "the address is free again"


async def test_mailed_tokens_and_passwords_appear_only_in_the_mail(
    mailing: httpx.AsyncClient, mail_server: SmtpTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    email, tokens = await signed_in(mailing)
    responses = [await _forgot(mailing, email)]
    responses.append(
        await mailing.post("/api/v1/auth/verify/request", headers=bearer(tokens["access_token"]))
    )
    mails = await mail_server.await_messages(2)
    mailed = [mail.token() for mail in mails]
    for token in mailed:
        for path, body in (
            ("/api/v1/auth/password/reset", {"token": token, "new_password": NEW_PASSWORD}),
            ("/api/v1/auth/verify", {"token": token}),
        ):
            responses.append(await mailing.post(path, json=body))
    # `mail.log` is the receiving test server's own debug log: the mailbox, not the app.
    app_records = [record for record in caplog.records if not record.name.startswith("mail.")]
    seen = "\n".join(
        [record.getMessage() + repr(record.__dict__) for record in app_records]
        + [answer.text + repr(dict(answer.headers)) for answer in responses]
    )
    for secret in [*mailed, PASSWORD, NEW_PASSWORD, email]:
        assert secret not in seen
