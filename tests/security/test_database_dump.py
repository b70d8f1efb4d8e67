"""Issue 16, "done when": after MFA (setup, enable, TOTP and recovery-code logins), API keys
(created, used, deleted), password resets and email verifications have all happened through the
API, a dump of EVERY table and column of the database (and every key and value the app keeps in
Redis) holds no TOTP seed, API key, recovery code, reset or verification token in clear, in any
spelling a leak would take (base32 and its raw bytes in hex/base64, with or without dashes, any
case)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator

import asyncpg
import pytest
from redis.asyncio import Redis

from tests.api.auth_helpers import bearer, login, register, signed_in
from tests.api.mfa_helpers import challenge, code, mfa_account, verify
from tests.conftest import SettingsFactory
from tests.support.app import client_for, running_app
from tests.support.services import asyncpg_dsn
from tests.support.smtp import SmtpTestServer, smtp_server


@pytest.fixture
def mail_server() -> Iterator[SmtpTestServer]:
    with smtp_server() as server:
        yield server


def spellings(secret: str) -> set[str]:
    """Forms a leaked value could take in a dump."""
    forms = {secret, secret.lower(), secret.upper()}
    plain = secret.replace("-", "")
    forms |= {plain, plain.lower(), plain.upper()}
    try:  # a base32 seed: its raw bytes, as hex and base64
        raw = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
        forms |= {raw.hex(), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    except (binascii.Error, ValueError):
        pass
    return {form for form in forms if len(form) >= 12}


async def dump_database(database_url: str) -> str:
    """Every column of every table in the public schema, as text."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        columns = await connection.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
        )
        parts = []
        for row in columns:
            table, column = row["table_name"], row["column_name"]
            values = await connection.fetch(f'SELECT "{column}"::text AS v FROM "{table}"')  # noqa: S608 - names from the catalog
            parts += [f"{table}.{column}={value['v']}" for value in values]
    finally:
        await connection.close()
    return "\n".join(parts)


async def dump_redis(redis_url: str, prefix: str) -> str:
    client = Redis.from_url(redis_url)
    parts = []
    try:
        async for key in client.scan_iter(match=f"{prefix}*"):
            kind = (await client.type(key)).decode()
            if kind == "string":
                value = await client.get(key)
            elif kind == "hash":
                value = await client.hgetall(key)
            elif kind == "zset":
                value = await client.zrange(key, 0, -1, withscores=True)
            elif kind == "set":
                value = await client.smembers(key)
            elif kind == "list":
                value = await client.lrange(key, 0, -1)
            else:
                value = kind
            parts.append(f"{key!r}={value!r}")
    finally:
        await client.aclose()
    return "\n".join(parts)


async def test_a_dump_holds_no_application_secret_in_clear(
    make_settings: SettingsFactory,
    mail_server: SmtpTestServer,
    database_url: str,
    redis_url: str,
    redis_prefix: str,
) -> None:
    secrets: list[str] = []
    settings = make_settings(smtp_url=mail_server.url, public_base_url="https://app.example.test")
    async with running_app(settings) as app, client_for(app) as client:
        # MFA: enabled, then logins with a TOTP code and a recovery code.
        account = await mfa_account(client)
        secrets += [account.secret, *account.recovery_codes]
        fresh = code(account.secret, account.enabled_step + 1)
        assert (
            await verify(client, await challenge(client, account.email), fresh)
        ).status_code == 200
        used = account.recovery_codes[0]
        assert (
            await verify(client, await challenge(client, account.email), used)
        ).status_code == 200
        # A pending setup (never enabled) keeps its seed too.
        _, other = await signed_in(client)
        pending = await client.post("/api/v1/auth/mfa/setup", headers=bearer(other["access_token"]))
        secrets.append(pending.json()["secret"])

        # API keys: one used and kept, one deleted.
        keys = []
        for name in ("kept", "deleted"):
            created = await client.post(
                "/api/v1/api-keys", json={"name": name}, headers=bearer(other["access_token"])
            )
            keys.append(created.json())
        secrets += [key["key"] for key in keys]
        secrets += [key["key"].removeprefix("fst_") for key in keys]
        assert (
            await client.get("/api/v1/users/me", headers={"X-API-Key": keys[0]["key"]})
        ).status_code == 200
        deleted = await client.delete(
            f"/api/v1/api-keys/{keys[1]['id']}", headers=bearer(other["access_token"])
        )
        assert deleted.status_code == 204

        # Password reset (one used, one left) and email verification (one used, one left).
        email = (await register(client))["email"]
        for _ in range(2):
            assert (
                await client.post("/api/v1/auth/password/forgot", json={"email": email})
            ).status_code == 202
        resets = [mail.token() for mail in await mail_server.await_messages(2)]
        secrets += resets
        reset = await client.post(
            "/api/v1/auth/password/reset",
            json={"token": resets[0], "new_password": "a new passphrase 1"},
        )
        assert reset.status_code == 204
        assert (await login(client, email, "a new passphrase 1")).status_code == 200
        _, tokens = await signed_in(client)  # a reset verifies the address: another account
        for _ in range(2):
            requested = await client.post(
                "/api/v1/auth/verify/request", headers=bearer(tokens["access_token"])
            )
            assert requested.status_code == 202
        verifications = [mail.token() for mail in (await mail_server.await_messages(4))[2:]]
        secrets += verifications
        verified = await client.post("/api/v1/auth/verify", json={"token": verifications[0]})
        assert verified.status_code == 204

        database = await dump_database(database_url)
        cache = await dump_redis(redis_url, redis_prefix)

    assert "users.mfa_secret=v1." in database  # the sealed seeds are there, as ciphertext
    assert "api_keys.key_hash=" in database
    assert "mfa_recovery_codes.code_hash=" in database
    assert "account_tokens.token_hash=" in database
    assert len(secrets) == 1 + 10 + 1 + 4 + 2 + 2
    for secret in secrets:
        for form in spellings(secret):
            assert form not in database, "a secret is in the database dump in clear"
            assert form not in cache, "a secret is in Redis in clear"


def test_spellings_cover_the_forms_a_leak_takes() -> None:
    forms = spellings("JBSWY3DPEHPK3PXP")
    assert {"JBSWY3DPEHPK3PXP", "jbswy3dpehpk3pxp", "48656c6c6f21deadbeef"} <= forms
    assert {"abcd-efgh-jkmn-pqrs", "abcdefghjkmnpqrs"} <= spellings("abcd-efgh-jkmn-pqrs")
