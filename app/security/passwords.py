"""Password hashing: argon2id via pwdlib, never on the event loop.

Parameters default to OWASP's minimum for argon2id (m=19456 KiB, t=2, p=1): the cheapest
setting OWASP accepts, so login throughput is as high as it can safely be. A hash made with
WEAKER parameters is upgraded on the next successful login (`verify` returns the new hash); a
stronger one (raised by hand, or by another service) is left alone.

Hashing runs in its own worker threads (argon2-cffi releases the GIL), one per CPU, at the lowest
CPU priority: under a storm they would otherwise hold every core and the event loop thread would
wait for one after each wake-up, delaying every other request (health probes included). The
queue in front of them is BOUNDED: past `QUEUE_PER_THREAD` waiting jobs per thread, new work is
refused at once (`Overloaded`, a 503 with Retry-After) instead of queueing into client timeouts.
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

from argon2 import extract_parameters
from argon2.exceptions import InvalidHashError
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from app.security.errors import Overloaded


@dataclass(frozen=True)
class Argon2Parameters:
    memory_cost: int = 19456  # KiB
    time_cost: int = 2
    parallelism: int = 1


OWASP_MINIMUM = Argon2Parameters()

#: Jobs allowed to wait per hashing thread before new ones are shed: at ~30 ms a hash, the
#: last one admitted waits ~0.3 s, and a 16-client login storm on 2 CPUs is served, not shed.
QUEUE_PER_THREAD = 8

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
        threads = concurrency or os.cpu_count() or 1
        self.max_pending = threads * (1 + QUEUE_PER_THREAD)
        self._pending = 0
        self._threads = ThreadPoolExecutor(
            max_workers=threads,
            thread_name_prefix="argon2",
            initializer=_lowest_priority,
        )
        self._dummy: str | None = None

    async def _run(self, work: Callable[..., T], *args: str) -> T:
        if self._pending >= self.max_pending:
            raise Overloaded("password hashing")
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._threads, work, *args)
        finally:
            self._pending -= 1

    async def hash(self, password: str) -> str:
        return await self._run(self._hash.hash, normalize_password(password))

    async def verify(self, password: str, hashed: str) -> tuple[bool, str | None]:
        """(matches, replacement hash if the stored one is weaker than the configured one)."""
        password = normalize_password(password)
        if not await self._run(self._hash.verify, password, hashed):
            return False, None
        return True, (await self._run(self._hash.hash, password) if self.weaker(hashed) else None)

    def weaker(self, hashed: str) -> bool:
        """Whether `hashed` is cheaper to attack than what this hasher makes: any cost
        parameter below the configured one, or not an argon2id hash at all."""
        try:
            stored = extract_parameters(hashed)
        except InvalidHashError:
            return True
        wanted = self.parameters
        return stored.type.name != "ID" or (
            stored.memory_cost < wanted.memory_cost
            or stored.time_cost < wanted.time_cost
            or stored.parallelism < wanted.parallelism
        )

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def verify_dummy(self, password: str) -> None:
        """Spend the same work as a real check, for a user that does not exist."""
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(16))
        await self.verify(password, self._dummy)
