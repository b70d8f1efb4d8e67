"""SPEC section 3, "Multi-factor authentication": every route and error over HTTP against the
real PostgreSQL and Redis: setup, enable, login answering `mfa_required`, verify with a TOTP or
a recovery code (each accepted once), wrong codes counted as failed logins, disable with the
password, and `/users/me` telling the truth about `mfa_enabled`."""

from __future__ import annotations

import asyncio
import time
import uuid
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from sqlalchemy import select, text, update

from app.models import User
from app.security.mfa import MFA_TOKEN_TYPE
from tests.api.auth_helpers import PASSWORD, bearer, login, me, refresh, signed_in
from tests.api.mfa_helpers import challenge, code, mfa_account, now_step, setup, verify
from tests.conftest import SettingsFactory
from tests.support.app import client_for, resources, running_app

SETUP, ENABLE = "/api/v1/auth/mfa/setup", "/api/v1/auth/mfa/enable"
DISABLE, VERIFY = "/api/v1/auth/mfa/disable", "/api/v1/auth/mfa/verify"


# ---- setup and enable ------------------------------------------------------------------------


async def test_setup_returns_a_seed_and_an_otpauth_uri_and_stores_it_sealed(
    app: object, client: httpx.AsyncClient
) -> None:
    email, tokens = await signed_in(client)
    response = await client.post(SETUP, headers=bearer(tokens["access_token"]))
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"secret", "otpauth_uri"}
    uri = urlsplit(body["otpauth_uri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    query = parse_qs(uri.query)
    assert query["secret"] == [body["secret"]]
    assert query["issuer"] == ["fastapi-secrets-template"]
    assert unquote(uri.path) == f"/fastapi-secrets-template:{email}"
    async with resources(app).sessionmaker() as session:
        stored = (
            await session.execute(
                text("SELECT mfa_secret, mfa_enabled FROM users WHERE email = :e"), {"e": email}
            )
        ).one()
    assert stored.mfa_enabled is False  # pending until a code confirms it
    assert stored.mfa_secret.startswith("v1.")
    assert body["secret"] not in stored.mfa_secret
    # Still off: logging in gives tokens at once, and /users/me says so.
    assert (await login(client, email)).json()["access_token"]
    assert (await me(client, tokens["access_token"])).json()["mfa_enabled"] is False


async def test_setup_and_enable_need_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.post(SETUP)).status_code == 401
    assert (await client.post(ENABLE, json={"code": "123456"})).status_code == 401
    assert (await client.post(DISABLE, json={"password": PASSWORD})).status_code == 401


async def test_enable_refuses_a_wrong_code_and_a_missing_setup(client: httpx.AsyncClient) -> None:
    _, tokens = await signed_in(client)
    headers = bearer(tokens["access_token"])
    nothing = await client.post(ENABLE, json={"code": "123456"}, headers=headers)
    assert nothing.status_code == 400
    secret = (await setup(client, tokens["access_token"]))["secret"]
    right = code(secret, now_step())
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for value in (wrong, "abcdef", "1234567", right[:5]):
        refused = await client.post(ENABLE, json={"code": value}, headers=headers)
        assert refused.status_code == 400, value
        assert value not in refused.text
    assert (await me(client, tokens["access_token"])).json()["mfa_enabled"] is False
    # A new setup replaces the pending seed: a code of the first one no longer works.
    second = (await setup(client, tokens["access_token"]))["secret"]
    assert second != secret
    stale = await client.post(ENABLE, json={"code": right}, headers=headers)
    if code(second, now_step()) != right:  # 1 in a million they coincide
        assert stale.status_code == 400


async def test_enable_returns_ten_single_use_recovery_codes_once(
    client: httpx.AsyncClient,
) -> None:
    account = await mfa_account(client)
    codes = account.recovery_codes
    assert len(codes) == len(set(codes)) == 10
    assert (await me(client, account.tokens["access_token"])).json()["mfa_enabled"] is True
    again = await client.post(SETUP, headers=account.headers)
    assert again.status_code == 409
    enable_again = await client.post(
        ENABLE, json={"code": code(account.secret, now_step() + 1)}, headers=account.headers
    )
    assert enable_again.status_code == 409


async def test_enable_validates_its_body(client: httpx.AsyncClient) -> None:
    _, tokens = await signed_in(client)
    headers = bearer(tokens["access_token"])
    for body in ({}, {"code": ""}, {"code": "1" * 65}, {"code": "123456", "extra": 1}):
        assert (await client.post(ENABLE, json=body, headers=headers)).status_code == 422


# ---- logging in with MFA on ------------------------------------------------------------------


async def test_login_answers_mfa_required_and_verify_completes_it(
    client: httpx.AsyncClient,
) -> None:
    account = await mfa_account(client)
    response = await login(client, account.email)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"mfa_required", "mfa_token"}
    assert body["mfa_required"] is True
    # The mfa_token is no access token, and an access token is no mfa_token.
    assert (await me(client, body["mfa_token"])).status_code == 401
    other = await verify(client, account.tokens["access_token"], code(account.secret, 0))
    assert other.status_code == 401
    done = await verify(client, body["mfa_token"], code(account.secret, account.enabled_step + 1))
    assert done.status_code == 200, done.text
    pair = done.json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert done.headers["Cache-Control"] == "no-store"
    assert (await me(client, pair["access_token"])).json()["mfa_enabled"] is True
    assert (await refresh(client, pair["refresh_token"])).status_code == 200


async def test_a_code_is_accepted_once_and_never_an_older_one(
    app: object, client: httpx.AsyncClient
) -> None:
    account = await mfa_account(client)
    step = account.enabled_step
    # The enabling code itself cannot log in (same step), nor can an older one.
    for used in (code(account.secret, step), code(account.secret, step - 1)):
        assert (
            await verify(client, await challenge(client, account.email), used)
        ).status_code == 401
    fresh = code(account.secret, step + 1)
    assert (await verify(client, await challenge(client, account.email), fresh)).status_code == 200
    replay = await verify(client, await challenge(client, account.email), fresh)
    assert replay.status_code == 401
    async with resources(app).sessionmaker() as session:
        last = await session.scalar(select(User.mfa_last_step).where(User.email == account.email))
    assert last == step + 1


async def test_the_mfa_token_is_single_use_and_short_lived(
    app: object, client: httpx.AsyncClient
) -> None:
    account = await mfa_account(client)
    token = await challenge(client, account.email)
    first = await verify(client, token, account.recovery_codes[0])
    assert first.status_code == 200
    again = await verify(client, token, account.recovery_codes[1])
    assert again.status_code == 401
    # Expired (signed by the app's own ring, with the right type).
    user_id = str((await me(client, first.json()["access_token"])).json()["id"])
    settings = resources(app).settings
    now = int(time.time())
    expired = (
        resources(app)
        .security.tokens.ring()
        .sign(
            {
                "iss": settings.jwt_issuer,
                "aud": settings.jwt_audience,
                "sub": user_id,
                "iat": now - 400,
                "nbf": now - 400,
                "exp": now - 100,
                "jti": uuid.uuid4().hex,
            },
            MFA_TOKEN_TYPE,
        )
    )
    assert (await verify(client, expired, account.recovery_codes[1])).status_code == 401
    for junk in ("junk-token-xyz", "eyJhbGciOiJub25lIn0.e30.", "a" * 9000):
        refused = await client.post(VERIFY, json={"mfa_token": junk, "code": "123456"})
        assert refused.status_code in {401, 422}
        assert junk not in refused.text


async def test_recovery_codes_work_once_in_any_spelling(client: httpx.AsyncClient) -> None:
    account = await mfa_account(client)
    first, second = account.recovery_codes[:2]
    assert (await verify(client, await challenge(client, account.email), first)).status_code == 200
    used = await verify(client, await challenge(client, account.email), first)
    assert used.status_code == 401
    sloppy = second.replace("-", "").upper()
    assert (await verify(client, await challenge(client, account.email), sloppy)).status_code == 200
    not_a_code = await verify(client, await challenge(client, account.email), "zzzz-zzzz")
    assert not_a_code.status_code == 401


async def test_wrong_codes_are_failed_logins(make_settings: SettingsFactory) -> None:
    async with running_app(make_settings(login_max_failures=3)) as app, client_for(app) as client:
        account = await mfa_account(client)
        token = await challenge(client, account.email)
        statuses = [(await verify(client, token, "000000")).status_code for _ in range(2)]
        # A right password in between must not reset the count of wrong codes.
        token = await challenge(client, account.email)
        statuses.append((await verify(client, token, "000001")).status_code)
        assert statuses == [401, 401, 401]
        locked = await verify(client, token, code(account.secret, account.enabled_step + 1))
        assert locked.status_code == 429
        assert int(locked.headers["Retry-After"]) > 0
        assert (await login(client, account.email)).status_code == 429
        scraped = await client.get("/metrics")
        assert 'auth_login_failures_total{reason="invalid_mfa_code"} 3.0' in scraped.text
        del app


async def test_a_disabled_account_cannot_finish_its_login(
    app: object, client: httpx.AsyncClient
) -> None:
    account = await mfa_account(client)
    token = await challenge(client, account.email)
    async with resources(app).sessionmaker() as session:
        await session.execute(
            update(User).where(User.email == account.email).values(is_active=False)
        )
        await session.commit()
    refused = await verify(client, token, code(account.secret, account.enabled_step + 1))
    assert refused.status_code == 401


# ---- disable ---------------------------------------------------------------------------------


async def test_disable_needs_the_password_and_turns_mfa_off(
    app: object, client: httpx.AsyncClient
) -> None:
    account = await mfa_account(client)
    pending = await challenge(client, account.email)
    wrong = await client.post(
        DISABLE, json={"password": "not the password"}, headers=account.headers
    )
    assert wrong.status_code == 401
    assert "not the password" not in wrong.text
    done = await client.post(DISABLE, json={"password": PASSWORD}, headers=account.headers)
    assert done.status_code == 204
    assert (await me(client, account.tokens["access_token"])).json()["mfa_enabled"] is False
    direct = await login(client, account.email)
    assert set(direct.json()) >= {"access_token", "refresh_token"}
    # The challenge handed out before is worthless now, recovery codes too.
    assert (await verify(client, pending, account.recovery_codes[0])).status_code == 401
    async with resources(app).sessionmaker() as session:
        row = (
            await session.execute(
                text(
                    "SELECT u.mfa_secret, u.mfa_last_step, count(c.id) AS codes FROM users u "
                    "LEFT JOIN mfa_recovery_codes c ON c.user_id = u.id WHERE u.email = :e "
                    "GROUP BY u.id"
                ),
                {"e": account.email},
            )
        ).one()
    assert tuple(row) == (None, None, 0)
    # Disabling again is harmless; MFA can be set up anew.
    assert (
        await client.post(DISABLE, json={"password": PASSWORD}, headers=account.headers)
    ).status_code == 204
    assert (await client.post(SETUP, headers=account.headers)).status_code == 200


async def test_wrong_passwords_at_disable_are_failed_logins(make_settings: SettingsFactory) -> None:
    async with running_app(make_settings(login_max_failures=2)) as app, client_for(app) as client:
        account = await mfa_account(client)
        statuses = [
            (
                await client.post(DISABLE, json={"password": "wrong one"}, headers=account.headers)
            ).status_code
            for _ in range(3)
        ]
        assert statuses == [401, 401, 429]
        still = await client.post(DISABLE, json={"password": PASSWORD}, headers=account.headers)
        assert still.status_code == 429  # locked: not even the right password gets through
        assert (await me(client, account.tokens["access_token"])).json()["mfa_enabled"] is True
        del app


@pytest.mark.parametrize("body", [{}, {"password": ""}, {"password": "x", "more": 1}])
async def test_disable_validates_its_body(
    client: httpx.AsyncClient, body: dict[str, object]
) -> None:
    _, tokens = await signed_in(client)
    response = await client.post(DISABLE, json=body, headers=bearer(tokens["access_token"]))
    assert response.status_code == 422


async def test_verify_validates_its_body(client: httpx.AsyncClient) -> None:
    for body in ({}, {"mfa_token": "x"}, {"code": "123456"}, {"mfa_token": "", "code": "1"}):
        assert (await client.post(VERIFY, json=body)).status_code == 422


# ---- two replicas ----------------------------------------------------------------------------


async def test_two_replicas_never_both_accept_one_code(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    async with (
        running_app(settings) as one,
        running_app(settings) as two,
        client_for(one) as a,
        client_for(two) as b,
    ):
        account = await mfa_account(a)
        fresh = code(account.secret, account.enabled_step + 1)
        tokens = [await challenge(a, account.email), await challenge(b, account.email)]
        # The same code at the same moment on both replicas: exactly one login.
        answers = await asyncio.gather(verify(a, tokens[0], fresh), verify(b, tokens[1], fresh))
        assert sorted(r.status_code for r in answers) == [200, 401]
        # And the one that lost cannot try that code again later, on either replica.
        for client in (a, b):
            again = await verify(client, await challenge(client, account.email), fresh)
            assert again.status_code == 401
        # A recovery code raced on both replicas is used once.
        spare = account.recovery_codes[0]
        tokens = [await challenge(a, account.email), await challenge(b, account.email)]
        answers = await asyncio.gather(verify(a, tokens[0], spare), verify(b, tokens[1], spare))
        assert sorted(r.status_code for r in answers) == [200, 401]
        # One mfa_token raced on both replicas (two different valid codes) logs in once.
        token = await challenge(a, account.email)
        answers = await asyncio.gather(
            verify(a, token, account.recovery_codes[1]), verify(b, token, account.recovery_codes[2])
        )
        assert sorted(r.status_code for r in answers)[0] == 200
        assert sorted(r.status_code for r in answers)[1] == 401
