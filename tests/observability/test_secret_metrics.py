"""Secret health and key-ring metrics move when the secrets do: a rotation picked up from a
file, a refresh that fails because the file disappeared or became a directory, a new key."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import SettingsFactory
from tests.observability.conftest import LogLines
from tests.observability.scraping import Samples, scrape, value
from tests.support.app import running_client

DAY = 86400.0
DB = {"setting": "DATABASE_PASSWORD", "source": "file"}


async def scrape_until(
    client: httpx.AsyncClient, condition: Callable[[Samples], bool], timeout: float = 15.0
) -> Samples:
    """Scrape until `condition` holds (the refresher polls files every second)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = await scrape(client)
        if condition(samples):
            return samples
        assert time.monotonic() < deadline, "the metrics did not move within the timeout"
        await asyncio.sleep(0.2)


def write_aged(path: Path, text: str, age: float) -> None:
    path.write_text(text)
    past = time.time() - age
    os.utime(path, (past, past))


async def test_rotation_refresh_failure_and_recovery_move_the_secret_metrics(
    make_settings: SettingsFactory,
    tmp_path: Path,
    json_logs: LogLines,
) -> None:
    # The test PostgreSQL trusts loopback, so any DATABASE_PASSWORD value connects.
    password = tmp_path / "database_password"
    write_aged(password, secrets.token_urlsafe(24), 3 * DAY)
    async with running_client(make_settings(database_password_file=str(password))) as client:
        start = await scrape(client)
        assert value(start, "secret_refresh_failures_total", **DB) == 0
        assert value(start, "secret_rotations_total", **DB) == 0
        assert 3 * DAY - 60 < (value(start, "secret_age_seconds", **DB) or 0) < 3 * DAY + 60
        loaded_at = value(start, "secret_last_refresh_success_timestamp", **DB) or 0
        assert abs(loaded_at - time.time()) < 60

        # Rotation: a new value in the file is picked up without a restart.
        password.write_text(secrets.token_urlsafe(24))
        rotated = await scrape_until(
            client, lambda s: value(s, "secret_rotations_total", **DB) == 1
        )
        assert (value(rotated, "secret_age_seconds", **DB) or 0) < 60
        assert (value(rotated, "secret_last_refresh_success_timestamp", **DB) or 0) > loaded_at
        assert value(rotated, "secret_refresh_failures_total", **DB) == 0

        # The file disappears: refreshes fail, the last good value keeps serving.
        password.unlink()
        failing = await scrape_until(
            client, lambda s: (value(s, "secret_refresh_failures_total", **DB) or 0) >= 1
        )
        last_success = value(failing, "secret_last_refresh_success_timestamp", **DB)
        assert (await client.get("/health/ready")).status_code == 200

        # ... and becomes a directory (what `chmod 000` cannot simulate for root).
        failures = value(failing, "secret_refresh_failures_total", **DB) or 0
        password.mkdir()
        worse = await scrape_until(
            client, lambda s: (value(s, "secret_refresh_failures_total", **DB) or 0) > failures
        )
        assert value(worse, "secret_last_refresh_success_timestamp", **DB) == last_success

        # Recovery: a readable file again; the success timestamp moves on.
        shutil.rmtree(password)
        password.write_text(secrets.token_urlsafe(24))
        recovered = await scrape_until(
            client,
            lambda s: (
                (value(s, "secret_last_refresh_success_timestamp", **DB) or 0) > (last_success or 0)
            ),
        )
        assert value(recovered, "secret_rotations_total", **DB) == 2

    events = [line for line in json_logs() if line["logger"] == "app.audit"]
    failed = [
        e
        for e in events
        if e["event"] == "secret.refresh_failed" and e["setting"] == "DATABASE_PASSWORD"
    ]
    assert failed
    assert all(e["source"] == "file" for e in failed)
    rotated_events = [
        e for e in events if e["event"] == "secret.rotated" and e["setting"] == "DATABASE_PASSWORD"
    ]
    assert len(rotated_events) == 2


def hs256(kid: str, **times: float) -> dict[str, Any]:
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return {"kty": "oct", "kid": kid, "alg": "HS256", "k": key, **times}


async def test_key_ring_metrics_and_audit_follow_the_ring(
    make_settings: SettingsFactory,
    tmp_path: Path,
    json_logs: LogLines,
) -> None:
    now = time.time()
    ring = [hs256("current", iat=now - 2 * DAY), hs256("previous", iat=now - 40 * DAY)]
    keys_file = tmp_path / "jwt_keys"
    keys_file.write_text(json.dumps({"keys": ring}))
    async with running_client(make_settings(jwt_keys=None, jwt_keys_file=str(keys_file))) as client:
        first = await scrape(client)
        assert value(first, "jwt_keys_in_ring") == 2
        age = value(first, "jwt_signing_key_age_seconds", kid="current")
        assert age is not None
        assert 2 * DAY - 60 < age < 2 * DAY + 60
        assert value(first, "jwt_signing_key_age_seconds", kid="previous") is None

        # Stage a verify-only key (future nbf): the ring grows, "current" still signs.
        staged = hs256("next", iat=time.time(), nbf=time.time() + 3600)
        keys_file.write_text(json.dumps({"keys": [staged, *ring]}))
        grown = await scrape_until(client, lambda s: value(s, "jwt_keys_in_ring") == 3)
        assert value(grown, "jwt_signing_key_age_seconds", kid="current") is not None

        # Retire the old key.
        keys_file.write_text(json.dumps({"keys": [staged, ring[0]]}))
        await scrape_until(client, lambda s: value(s, "jwt_keys_in_ring") == 2)

    changes = [line for line in json_logs() if line.get("event") == "keyring.changed"]
    assert [c["added_kids"] for c in changes] == [["next"], []]
    assert [c["removed_kids"] for c in changes] == [[], ["previous"]]
    assert changes[-1]["kids"] == ["current", "next"]
    assert all(c["signing_kid"] == "current" for c in changes)
    text = json.dumps(changes)
    assert all(key["k"] not in text for key in [*ring, staged])


async def test_raw_hmac_ring_reports_its_keys(make_settings: SettingsFactory) -> None:
    ring = "\n".join(secrets.token_urlsafe(40) for _ in range(3))
    async with running_client(make_settings(jwt_keys=ring)) as client:
        samples = await scrape(client)
    assert value(samples, "jwt_keys_in_ring") == 3
    ages = [v for (name, _), v in samples.items() if name == "jwt_signing_key_age_seconds"]
    assert len(ages) == 1
    assert 0 <= ages[0] < 60
