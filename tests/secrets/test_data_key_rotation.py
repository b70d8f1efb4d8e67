"""Issue 16, "done when": rotating `DATA_KEYS` (add, reencrypt, retire) under live traffic loses
nothing and needs no restart. One real `python -m app serve` process reads the ring from
`DATA_KEYS_FILE`; while clients keep sealing and opening seeds through the API (setup -> enable
with a code -> disable, in a loop), the ring file is rewritten by `keys rotate`, the database by
`data reencrypt`, and the ring again by `keys retire`. No request may fail, the process must be
the same one throughout, and every user whose seed was sealed under the retired key must still
log in with a TOTP code at the end."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from app.keys.data import DataKeyRing, field_context
from tests.api.auth_helpers import PASSWORD, bearer, signed_in
from tests.api.mfa_helpers import challenge, code, mfa_account, now_step, verify
from tests.observability.scraping import parse_metrics, value
from tests.support.server import run_cli, serve
from tests.support.services import asyncpg_dsn

pytestmark = pytest.mark.slow

#: Extra rows sealed under the old key, so `data reencrypt` runs for a few seconds of traffic.
BULK = 1500


async def bulk_sealed_rows(database_url: str, ring_file: Path, count: int) -> None:
    ring = DataKeyRing.parse(ring_file.read_text())
    rows = []
    for _ in range(count):
        user_id = uuid.uuid4()
        context = field_context("users", "mfa_secret", user_id)
        rows.append(
            (user_id, f"bulk-{user_id.hex}@example.com", ring.seal(b"BULKSEED", context).text)
        )
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await connection.executemany(
            "INSERT INTO users (id, email, password_hash, mfa_secret) VALUES ($1, $2, 'x', $3)",
            rows,
        )
    finally:
        await connection.close()


async def kids_in_use(database_url: str) -> Counter[str]:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await connection.fetch(
            "SELECT split_part(mfa_secret, '.', 2) AS kid, count(*) AS n FROM users "
            "WHERE mfa_secret IS NOT NULL GROUP BY 1"
        )
    finally:
        await connection.close()
    return Counter({row["kid"]: row["n"] for row in rows})


async def ring_size_seen_by_server(client: httpx.AsyncClient) -> float | None:
    return value(parse_metrics((await client.get("/metrics")).text), "data_keys_in_ring")


async def wait_for_ring(client: httpx.AsyncClient, size: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while await ring_size_seen_by_server(client) != size:
        assert time.monotonic() < deadline, f"the server never loaded a ring of {size} key(s)"
        await asyncio.sleep(0.1)


async def test_rotation_under_live_traffic_loses_nothing_and_needs_no_restart(
    server_env: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    ring_file = tmp_path / "data_keys"
    env = {k: v for k, v in server_env.items() if k != "DATA_KEYS"}
    env.update({"DATA_KEYS_FILE": str(ring_file), "SECRETS_REFRESH_SECONDS": "1"})
    rotate = ("keys", "rotate", "--file", str(ring_file), "--alg", "A256GCM")
    assert run_cli(*rotate, env=env).returncode == 0
    old_kid = json.loads(ring_file.read_text())["keys"][0]["kid"]

    with serve(env, tmp_path) as server:
        pid = server.process.pid
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            idle = [await mfa_account(client) for _ in range(6)]  # sealed under the old key
            await bulk_sealed_rows(database_url, ring_file, BULK)  # so re-encrypting takes a while
            busy = [(await signed_in(client))[1] for _ in range(3)]
            stop = asyncio.Event()
            seen: Counter[str] = Counter()
            failures: list[str] = []

            async def cycle(tokens: dict[str, Any]) -> None:
                headers = bearer(tokens["access_token"])
                while not stop.is_set():
                    setup = await client.post("/api/v1/auth/mfa/setup", headers=headers)
                    enable = (
                        await client.post(
                            "/api/v1/auth/mfa/enable",
                            json={"code": code(setup.json()["secret"], now_step())},
                            headers=headers,
                        )
                        if setup.status_code == 200
                        else None
                    )
                    disable = await client.post(
                        "/api/v1/auth/mfa/disable", json={"password": PASSWORD}, headers=headers
                    )
                    got = (setup.status_code, enable and enable.status_code, disable.status_code)
                    if got != (200, 200, 204):
                        failures.append(f"setup/enable/disable answered {got}")
                    seen["cycles"] += 1

            traffic = [asyncio.create_task(cycle(tokens)) for tokens in busy]
            try:
                await asyncio.sleep(1)
                # 1. A new key: the server picks the file up and encrypts with it, no restart.
                added = await asyncio.to_thread(run_cli, *rotate, env=env)
                assert added.returncode == 0, added.stderr
                new_kid = json.loads(ring_file.read_text())["keys"][0]["kid"]
                await wait_for_ring(client, 2)
                assert (await kids_in_use(database_url))[old_kid] >= len(idle) + BULK
                # 2. Old values move to the new key while the traffic goes on.
                cycles_before = seen["cycles"]
                moved = await asyncio.to_thread(
                    run_cli, "data", "reencrypt", "--batch-size", "20", env=env
                )
                assert moved.returncode == 0, moved.stdout + moved.stderr
                rewritten = re.search(r"re-encrypted (\d+) value", moved.stdout)
                assert rewritten is not None, moved.stdout
                assert int(rewritten.group(1)) >= len(idle) + BULK
                assert seen["cycles"] > cycles_before, "no request ran during the re-encryption"
                assert (await kids_in_use(database_url))[old_kid] == 0
                # 3. The old key leaves the ring (retire checks nothing uses it).
                retired = await asyncio.to_thread(
                    run_cli, "keys", "retire", "--file", str(ring_file), "--keep-seconds", "0",
                    env=env,
                )  # fmt: skip
                assert retired.returncode == 0, retired.stdout + retired.stderr
                assert f"retired 1 data key(s): {old_kid}" in retired.stdout
                await wait_for_ring(client, 1)
                await asyncio.sleep(1)  # traffic on the new ring alone
            finally:
                stop.set()
                await asyncio.gather(*traffic)

            # Nothing was lost: every seed sealed under the retired key still opens.
            for account in idle:
                token = await challenge(client, account.email)
                answer = await verify(client, token, code(account.secret, account.enabled_step + 1))
                assert answer.status_code == 200, answer.text
            assert set(await kids_in_use(database_url)) <= {new_kid}
        assert server.process.poll() is None
        assert server.process.pid == pid  # the same process throughout: no restart
    assert not failures, failures[:5]
    assert seen["cycles"] >= 6, seen  # the traffic really ran through the rotation
    output = server.output()
    assert "Traceback" not in output
    assert all(account.secret not in output for account in idle)
