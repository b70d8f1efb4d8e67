"""Abuse at the edges (issue 12, "Medium" and "Low"): who is trusted for the client address,
per-IP limits, victim lockout, canonical emails, Redis as a trust boundary, headers, hashes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets

import httpx
import pytest
from argon2 import PasswordHasher as Argon2
from redis.asyncio import Redis

from app.security.passwords import OWASP_MINIMUM
from tests.api.auth_helpers import PASSWORD, bearer, login, new_email, register, signed_in
from tests.conftest import SettingsFactory
from tests.support.app import client_for, resources, running_app, running_client


async def _sql(app: object, query: str, *args: object) -> object:
    import asyncpg

    from tests.support.services import asyncpg_dsn

    dsn = asyncpg_dsn(resources(app).settings.database_url)  # type: ignore[arg-type]
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval(query, *args)
    finally:
        await connection.close()


# ---- the client address: only trusted proxies are believed ---------------------------------


async def test_forwarded_for_is_believed_only_from_a_trusted_proxy(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(rate_limit_register="2/hour", forwarded_allow_ips="10.0.0.1")
    async with running_app(settings) as app:
        # From an untrusted peer, a rotating X-Forwarded-For does not escape the per-IP limit.
        async with client_for(app, client=("198.51.100.20", 4000)) as direct:
            statuses = []
            for n in range(3):
                answer = await direct.post(
                    "/api/v1/auth/register",
                    json={"email": new_email(), "password": PASSWORD},
                    headers={"X-Forwarded-For": f"203.0.113.{n}"},
                )
                statuses.append(answer.status_code)
            assert statuses == [201, 201, 429]
            assert int(answer.headers["Retry-After"]) > 0
        # Through the trusted proxy, each forwarded client has its own allowance.
        async with client_for(app, client=("10.0.0.1", 4000)) as proxied:
            for n in range(2):
                answer = await proxied.post(
                    "/api/v1/auth/register",
                    json={"email": new_email(), "password": PASSWORD},
                    headers={"X-Forwarded-For": f"192.0.2.{n}"},
                )
                assert answer.status_code == 201, answer.text


async def test_registration_is_limited_per_ip_before_any_hashing(
    make_settings: SettingsFactory,
) -> None:
    async with running_client(make_settings(rate_limit_register="3/hour")) as client:
        taken = new_email()
        await register(client, taken)
        assert (
            await client.post("/api/v1/auth/register", json={"email": taken, "password": PASSWORD})
        ).status_code == 409
        limited = await client.post(
            "/api/v1/auth/register", json={"email": new_email(), "password": PASSWORD}
        )
        assert limited.status_code == 201
        refused = await client.post(
            "/api/v1/auth/register", json={"email": taken, "password": PASSWORD}
        )
        assert refused.status_code == 429, "past the limit even the 409 oracle is closed"


async def test_login_and_refresh_have_per_ip_limits(make_settings: SettingsFactory) -> None:
    settings = make_settings(rate_limit_login="3/minute", rate_limit_refresh="2/minute")
    async with running_client(settings) as client:
        email, tokens = new_email(), None
        await register(client, email)
        answers = [await login(client, email) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        tokens = answers[0].json()
        statuses = []
        for _ in range(3):
            answer = await client.post(
                "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
            )
            statuses.append(answer.status_code)
            if answer.status_code == 200:
                tokens = answer.json()
        assert statuses == [200, 200, 429]


async def test_an_attacker_elsewhere_cannot_lock_the_owner_out(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(login_max_failures=3, forwarded_allow_ips="127.0.0.1")
    async with running_client(settings) as client:
        email = new_email()
        await register(client, email)
        attacker = {"X-Forwarded-For": "203.0.113.66"}
        spellings = [email, f"  {email.upper()} ", email.title()]
        for spelling in spellings:
            failed = await client.post(
                "/api/v1/auth/login",
                data={"username": spelling, "password": "guess"},
                headers=attacker,
            )
            assert failed.status_code == 401
        locked = await client.post(
            "/api/v1/auth/login", data={"username": email, "password": PASSWORD}, headers=attacker
        )
        assert locked.status_code == 429, "every spelling counted against the one account"
        owner = await client.post(
            "/api/v1/auth/login",
            data={"username": email, "password": PASSWORD},
            headers={"X-Forwarded-For": "198.51.100.5"},
        )
        assert owner.status_code == 200, "the owner, elsewhere, still signs in"


# ---- canonical emails and hostile input ------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("bob@example.com", " BOB@Example.COM "),
        ("jos\u00e9@example.com", "jose\u0301@example.com"),  # NFC vs NFD
        ("bob@example.com", "\uff42\uff4f\uff42@example.com"),  # full-width
        ("bob@b\u00fccher.example", "bob@xn--bcher-kva.example"),  # IDNA
    ],
)
async def test_look_alike_spellings_are_one_account(
    client: httpx.AsyncClient, first: str, second: str
) -> None:
    created = await register(client, first)
    again = await client.post("/api/v1/auth/register", json={"email": second, "password": "x" * 9})
    assert again.status_code == 409
    assert (await login(client, second)).status_code == 200
    assert created["email"] == created["email"].casefold()


@pytest.mark.parametrize("field", ["username", "password"])
async def test_control_characters_in_credentials_are_4xx_not_500(
    client: httpx.AsyncClient, field: str
) -> None:
    form = {"username": new_email(), "password": PASSWORD}
    form[field] = form[field][:3] + "\x00\x1b" + form[field][3:]
    answer = await client.post("/api/v1/auth/login", data=form)
    assert answer.status_code == 401
    registered = await client.post(
        "/api/v1/auth/register", json={"email": new_email(), "password": "pass\x00word!"}
    )
    assert registered.status_code == 422
    assert "\x00" not in registered.text


# ---- Redis is a trust boundary -----------------------------------------------------------


async def test_a_forged_or_edited_refresh_family_is_refused(
    client: httpx.AsyncClient, app: object
) -> None:
    _, victim = await signed_in(client)
    redis: Redis = resources(app).redis
    prefix = resources(app).settings.redis_key_prefix
    family = victim["refresh_token"].split(".")[0]
    key = f"{prefix}refresh:family:{family}"
    # A Redis writer swaps in the hash of a refresh token of their own choosing.
    chosen = f"{family}.{'A' * 43}"
    await redis.hset(key, "current", hashlib.sha256(chosen.encode()).hexdigest())
    forged = await client.post("/api/v1/auth/refresh", json={"refresh_token": chosen})
    assert forged.status_code == 401
    # ...or writes a brand-new family for the victim's user id.
    user_id = await redis.hget(key, "user")
    fake_family = "B" * 22
    fake_token = f"{fake_family}.{'C' * 43}"
    await redis.hset(
        f"{prefix}refresh:family:{fake_family}",
        mapping={
            "user": user_id,
            "created": "1e10",
            "current": hashlib.sha256(fake_token.encode()).hexdigest(),
            "current_exp": "1e12",
            "revoked": "0",
            "kid": "x",
            "mac": "0" * 64,
        },
    )
    assert (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": fake_token})
    ).status_code == 401


async def test_a_lower_score_from_the_channel_cannot_unrevoke(
    client: httpx.AsyncClient, app: object
) -> None:
    _, tokens = await signed_in(client)
    revocations = resources(app).security.revocations
    deadline = asyncio.get_running_loop().time() + 5
    while not revocations.is_live:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    await client.post("/api/v1/auth/logout", headers=bearer(tokens["access_token"]))
    assert (
        await client.get("/api/v1/users/me", headers=bearer(tokens["access_token"]))
    ).status_code == 401
    # A Redis writer publishes the same members with a score in the past, and edits the set.
    redis: Redis = resources(app).redis
    members: dict[str, float] = {m: 1.0 for m in revocations._local}
    members["jti:marker"] = 4102444800.0  # a new entry, to see when the message was applied
    await redis.publish(revocations.channel, json.dumps(members))
    await redis.delete(revocations.key)
    deadline = asyncio.get_running_loop().time() + 5
    while "jti:marker" not in revocations._local:
        assert asyncio.get_running_loop().time() < deadline, "the message never arrived"
        await asyncio.sleep(0.02)
    me = await client.get("/api/v1/users/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 401


async def test_redis_keys_carry_no_email(client: httpx.AsyncClient, app: object) -> None:
    email = new_email()
    await register(client, email)
    await login(client, email, "wrong guess")
    redis: Redis = resources(app).redis
    prefix = resources(app).settings.redis_key_prefix
    keys = [key.decode() async for key in redis.scan_iter(match=f"{prefix}*")]
    assert keys, "the limiter wrote its keys"
    bare = hashlib.sha256(email.encode()).hexdigest()
    for key in keys:
        assert email not in key
        assert bare[:16] not in key


# ---- passwords -------------------------------------------------------------------------------


async def test_a_stronger_stored_hash_is_not_downgraded(
    client: httpx.AsyncClient, app: object
) -> None:
    email = new_email()
    await register(client, email)
    stronger = Argon2(
        memory_cost=OWASP_MINIMUM.memory_cost * 2, time_cost=OWASP_MINIMUM.time_cost + 1
    ).hash(PASSWORD)
    await _sql(app, "UPDATE users SET password_hash = $1 WHERE email = $2", stronger, email)
    assert (await login(client, email)).status_code == 200
    assert await _sql(app, "SELECT password_hash FROM users WHERE email = $1", email) == stronger
    weaker = Argon2(memory_cost=8192, time_cost=1).hash(PASSWORD)
    await _sql(app, "UPDATE users SET password_hash = $1 WHERE email = $2", weaker, email)
    assert (await login(client, email)).status_code == 200
    upgraded = await _sql(app, "SELECT password_hash FROM users WHERE email = $1", email)
    assert upgraded != weaker
    assert f"m={OWASP_MINIMUM.memory_cost}" in str(upgraded)


# ---- response headers ------------------------------------------------------------------------


async def test_security_headers(make_settings: SettingsFactory) -> None:
    async with running_app(make_settings(forwarded_allow_ips="10.0.0.1")) as app:
        async with client_for(app) as client:
            email, tokens = await signed_in(client)
            for answer in (
                await client.get("/health/live"),
                await client.get("/nope"),
                await login(client, email),
            ):
                assert answer.headers["X-Content-Type-Options"] == "nosniff"
                assert "Strict-Transport-Security" not in answer.headers
            assert (await login(client, email)).headers["Cache-Control"] == "no-store"
            me = await client.get("/api/v1/users/me", headers=bearer(tokens["access_token"]))
            assert me.headers["Cache-Control"] == "no-store"
            spoofed = await client.get("/health/live", headers={"X-Forwarded-Proto": "https"})
            assert "Strict-Transport-Security" not in spoofed.headers, "not from a trusted proxy"
        async with client_for(app, client=("10.0.0.1", 443)) as proxied:
            secure = await proxied.get("/health/live", headers={"X-Forwarded-Proto": "https"})
            assert secure.headers["Strict-Transport-Security"].startswith("max-age=")


# ---- /metrics ---------------------------------------------------------------------------------


async def test_production_metrics_answer_only_to_the_token(make_settings: SettingsFactory) -> None:
    production = {
        "app_env": "production",
        "jwt_issuer": "https://auth.example.test",
        "jwt_audience": "https://api.example.test",
    }
    # Without a token, production's /metrics is closed, loopback (a local proxy) included.
    async with (
        running_app(make_settings(**production)) as app,
        client_for(app, client=("127.0.0.1", 9999)) as local,
    ):
        assert (await local.get("/metrics")).status_code == 403
    token = secrets.token_urlsafe(32)
    async with (
        running_app(make_settings(**production, metrics_token=token)) as app,
        client_for(app, client=("127.0.0.1", 9999)) as local,
    ):
        assert (await local.get("/metrics")).status_code == 401
        scraped = await local.get("/metrics", headers=bearer(token))
        assert scraped.status_code == 200
        assert "auth_login_failures_total" in scraped.text
        assert 'reason="unknown_account"' not in scraped.text
        assert 'reason="wrong_password"' not in scraped.text
