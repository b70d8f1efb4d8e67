"""Re-encryption never overwrites live traffic, and live traffic survives re-encryption, shown
deterministically with PostgreSQL's own row locks (no mocks): a second connection changes a row
inside an open transaction, the other side blocks on that row, and the transaction commits.

- `data reencrypt` read the OLD value; a request rewrote it meanwhile (a new TOTP setup): the
  compare-and-set finds another value and leaves the request's value alone.
- `mfa/enable` read the pending seed; re-encryption rewrote it meanwhile (same seed, new key):
  enable's compare-and-set misses, re-reads, sees the same seed, and enables it (200, not 400).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import asyncpg
import httpx
import pytest

from app.keys.data import DataKeyRing, field_context, new_data_jwk
from app.security import sealed
from tests.api.auth_helpers import bearer, signed_in
from tests.api.mfa_helpers import code, now_step, setup
from tests.conftest import SettingsFactory
from tests.support.app import client_for, resources, running_app
from tests.support.services import asyncpg_dsn


def context(user_id: uuid.UUID) -> bytes:
    return field_context("users", "mfa_secret", user_id)


async def wait_until_blocked(database_url: str, timeout: float = 10) -> None:
    """Until some backend waits on a row lock (the other side reached its UPDATE)."""
    watcher = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        deadline = time.monotonic() + timeout
        while not await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        ):
            assert time.monotonic() < deadline, "nobody blocked on the row lock"
            await asyncio.sleep(0.02)
    finally:
        await watcher.close()


async def test_reencrypt_leaves_a_value_rewritten_meanwhile_alone(
    make_settings: SettingsFactory, database_url: str
) -> None:
    old, new = new_data_jwk(now=time.time() - 100), new_data_jwk()
    before = DataKeyRing.parse(json.dumps({"keys": [old]}))
    ring = DataKeyRing.parse(json.dumps({"keys": [new, old]}))
    user_id, other_id = uuid.uuid4(), uuid.uuid4()
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for uid in (user_id, other_id):
            await connection.execute(
                "INSERT INTO users (id, email, password_hash, mfa_secret) VALUES ($1, $2, 'x', $3)",
                uid,
                f"s-{uid.hex[:10]}@example.com",
                before.seal(b"OLDSEED", context(uid)).text,
            )
        live_write = ring.seal(b"NEWSEEDFROMSETUP", context(user_id)).text
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute(
            "UPDATE users SET mfa_secret = $2 WHERE id = $1", user_id, live_write
        )
        async with running_app(make_settings()) as app:
            job = asyncio.create_task(sealed.reencrypt(resources(app).sessionmaker, ring))
            await wait_until_blocked(database_url)
            await transaction.commit()
            progress = await asyncio.wait_for(job, 10)
        assert (progress.rewritten, progress.changed_meanwhile, progress.unreadable) == (1, 1, {})
        stored = dict(
            await connection.fetch(
                "SELECT id, mfa_secret FROM users WHERE id = ANY($1)", [user_id, other_id]
            )
        )
    finally:
        await connection.close()
    assert stored[user_id] == live_write  # the request's value, not an older plaintext
    assert ring.open(stored[other_id], context(other_id)) == b"OLDSEED"
    assert stored[other_id].startswith(f"v1.{new['kid']}.")


async def test_enable_survives_its_seed_being_reencrypted_meanwhile(
    make_settings: SettingsFactory, database_url: str
) -> None:
    old, new = new_data_jwk(now=time.time() - 100), new_data_jwk()
    settings = make_settings(data_keys=json.dumps({"keys": [new, old]}))
    before = DataKeyRing.parse(json.dumps({"keys": [old]}))
    async with running_app(settings) as app, client_for(app) as client:
        email, tokens = await signed_in(client)
        secret = (await setup(client, tokens["access_token"]))["secret"]
        connection = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            user_id = await connection.fetchval("SELECT id FROM users WHERE email = $1", email)
            # The pending seed as it was before a rotation: under the old key.
            await connection.execute(
                "UPDATE users SET mfa_secret = $2 WHERE id = $1",
                user_id,
                before.seal(secret.encode(), context(user_id)).text,
            )
            # Re-encryption of that row, in flight: same seed, new key, not committed yet.
            transaction = connection.transaction()
            await transaction.start()
            await connection.execute(
                "UPDATE users SET mfa_secret = $2 WHERE id = $1",
                user_id,
                resources(app).security.mfa.ring().seal(secret.encode(), context(user_id)).text,
            )
            enable = asyncio.create_task(
                client.post(
                    "/api/v1/auth/mfa/enable",
                    json={"code": code(secret, now_step())},
                    headers=bearer(tokens["access_token"]),
                )
            )
            await wait_until_blocked(database_url)
            await transaction.commit()
            answer: httpx.Response = await asyncio.wait_for(enable, 10)
            row = await connection.fetchrow(
                "SELECT mfa_enabled, mfa_secret FROM users WHERE id = $1", user_id
            )
        finally:
            await connection.close()
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["recovery_codes"]) == 10
    assert row["mfa_enabled"] is True
    assert row["mfa_secret"].startswith(f"v1.{new['kid']}.")


@pytest.mark.parametrize("batch_size", [1, 3, 500])
async def test_reencrypt_is_idempotent_in_any_batch_size(
    make_settings: SettingsFactory, database_url: str, batch_size: int
) -> None:
    old, new = new_data_jwk(now=time.time() - 100), new_data_jwk()
    before = DataKeyRing.parse(json.dumps({"keys": [old]}))
    ring = DataKeyRing.parse(json.dumps({"keys": [new, old]}))
    ids = [uuid.uuid4() for _ in range(7)]
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await connection.executemany(
            "INSERT INTO users (id, email, password_hash, mfa_secret) VALUES ($1, $2, 'x', $3)",
            [
                (uid, f"b-{uid.hex[:10]}@example.com", before.seal(uid.bytes, context(uid)).text)
                for uid in ids
            ],
        )
        # One already under the new key (as if an earlier run got that far).
        await connection.execute(
            "UPDATE users SET mfa_secret = $2 WHERE id = $1",
            ids[0],
            ring.seal(ids[0].bytes, context(ids[0])).text,
        )
        async with running_app(make_settings()) as app:
            sessions = resources(app).sessionmaker
            seen: list[int] = []
            first = await sealed.reencrypt(
                sessions, ring, batch_size=batch_size, advance=seen.append
            )
            second = await sealed.reencrypt(sessions, ring, batch_size=batch_size)
            async with resources(app).engine.connect() as conn:
                counts = await sealed.count_by_kid(conn)
        rows = await connection.fetch("SELECT id, mfa_secret FROM users WHERE id = ANY($1)", ids)
    finally:
        await connection.close()
    assert first.rewritten == 6
    assert sum(seen) == 6
    assert max(seen) <= batch_size
    assert second.done == 0
    assert counts == {"users.mfa_secret": {new["kid"]: 7}}
    for row in rows:
        assert ring.open(row["mfa_secret"], context(row["id"])) == row["id"].bytes
