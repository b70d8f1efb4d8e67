"""Password hashing: argon2id via pwdlib, never on the event loop.

Parameters default to OWASP's minimum for argon2id (m=19456 KiB, t=2, p=1): the cheapest
setting OWASP accepts, so login throughput is as high as it can safely be. Hashes made with other
parameters are upgraded on the next successful login (`verify` returns the new hash).

Hashing runs in its own worker threads (argon2-cffi releases the GIL), one per CPU, so a login
storm queues instead of exhausting memory. Those threads run at the lowest CPU priority: under a
storm they would otherwise hold every core and the event loop thread would wait for one after
each wake-up, delaying every other request (health probes included).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher


@dataclass(frozen=True)
class Argon2Parameters:
    memory_cost: int = 19456  # KiB
    time_cost: int = 2
    parallelism: int = 1


OWASP_MINIMUM = Argon2Parameters()

T = TypeVar("T")


def _lowest_priority() -> None:
    """Nice 19 for the calling thread (Linux applies niceness per thread); best effort."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def normalize_password(password: str) -> str:
    """NFKC (NIST SP 800-63B): the same password typed on different keyboards matches."""
    return unicodedata.normalize("NFKC", password)


class PasswordHasher:
    def __init__(
        self, parameters: Argon2Parameters = OWASP_MINIMUM, concurrency: int | None = None
    ) -> None:
        self.parameters = parameters
        self._hash = PasswordHash(
            (
                Argon2Hasher(
                    time_cost=parameters.time_cost,
                    memory_cost=parameters.memory_cost,
                    parallelism=parameters.parallelism,
                ),
            )
        )
        self._threads = ThreadPoolExecutor(
            max_workers=concurrency or os.cpu_count() or 1,
            thread_name_prefix="argon2",
            initializer=_lowest_priority,
        )
        self._dummy: str | None = None

    async def _run(self, work: Callable[..., T], *args: str) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, work, *args)

    async def hash(self, password: str) -> str:
        return await self._run(self._hash.hash, normalize_password(password))

    async def verify(self, password: str, hashed: str) -> tuple[bool, str | None]:
        """(matches, replacement hash if the stored one uses outdated parameters)."""
        return await self._run(self._hash.verify_and_update, normalize_password(password), hashed)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def verify_dummy(self, password: str) -> None:
        """Spend the same work as a real check, for a user that does not exist."""
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(16))
        await self.verify(password, self._dummy)
