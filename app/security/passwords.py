"""Password hashing: argon2id via pwdlib, never on the event loop.

Parameters default to OWASP's minimum for argon2id (m=19456 KiB, t=2, p=1): the cheapest
setting OWASP accepts, so login throughput is as high as it can safely be. Hashes made with other
parameters are upgraded on the next successful login (`verify` returns the new hash).

Hashing runs in worker threads (argon2-cffi releases the GIL), at most one per CPU at a time so
a login storm queues instead of exhausting memory, while the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import unicodedata
from dataclasses import dataclass

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher


@dataclass(frozen=True)
class Argon2Parameters:
    memory_cost: int = 19456  # KiB
    time_cost: int = 2
    parallelism: int = 1


OWASP_MINIMUM = Argon2Parameters()


def normalize_password(password: str) -> str:
    """NFKC (NIST SP 800-63B): the same password typed on different keyboards matches."""
    return unicodedata.normalize("NFKC", password)


class PasswordHasher:
    def __init__(self, parameters: Argon2Parameters = OWASP_MINIMUM,
                 concurrency: int | None = None) -> None:
        self.parameters = parameters
        self._hash = PasswordHash((Argon2Hasher(
            time_cost=parameters.time_cost, memory_cost=parameters.memory_cost,
            parallelism=parameters.parallelism,
        ),))
        self._slots = asyncio.Semaphore(concurrency or os.cpu_count() or 1)
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hash.hash, normalize_password(password))

    async def verify(self, password: str, hashed: str) -> tuple[bool, str | None]:
        """(matches, replacement hash if the stored one uses outdated parameters)."""
        async with self._slots:
            return await asyncio.to_thread(self._hash.verify_and_update,
                                           normalize_password(password), hashed)

    async def verify_dummy(self, password: str) -> None:
        """Spend the same work as a real check, for a user that does not exist."""
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(16))
        await self.verify(password, self._dummy)
