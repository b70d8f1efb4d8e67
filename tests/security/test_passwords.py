"""Password hashing: argon2id off the event loop, on low-priority threads, NFKC-normalised."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from app.security.passwords import Argon2Parameters, PasswordHasher


@pytest.fixture
def hasher() -> PasswordHasher:
    return PasswordHasher(Argon2Parameters(memory_cost=19456, time_cost=2, parallelism=1))


async def test_hash_and_verify_round_trip_with_unicode(hasher: PasswordHasher) -> None:
    stored = await hasher.hash("pässwörd ½ 🔑")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert (await hasher.verify("pässwörd ½ 🔑", stored))[0] is True
    assert (await hasher.verify("passwörd ½ 🔑", stored))[0] is False
    hasher.close()


async def test_nfkc_equivalent_spellings_match(hasher: PasswordHasher) -> None:
    stored = await hasher.hash("Ångström")  # precomposed
    assert (await hasher.verify("A\u030angstro\u0308m", stored))[0] is True  # decomposed
    hasher.close()


async def test_hashing_never_runs_on_the_event_loop_and_yields_the_cpu(
    hasher: PasswordHasher,
) -> None:
    seen: dict[str, object] = {}
    original = hasher._hash.hash

    def spy(password: str) -> str:
        seen["thread"] = threading.current_thread().name
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        return original(password)

    hasher._hash.hash = spy  # type: ignore[method-assign]
    loop_thread = threading.current_thread().name
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    task = asyncio.create_task(ticker())
    await hasher.hash("a long enough password")
    task.cancel()
    assert seen["thread"] != loop_thread
    assert str(seen["thread"]).startswith("argon2")
    assert seen["nice"] == 19
    assert ticks > 0, "the event loop kept running while the hash was computed"
    hasher.close()
