"""Per-account failed-login limit, shared by every replica through Redis.

Keyed on the (normalised) account name, hashed so the key does not store the email, and never on
client-supplied headers such as X-Forwarded-For. Unknown accounts are counted like real ones so
the 429 does not reveal which accounts exist.
"""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis


class LoginLimiter:
    def __init__(self, redis: Redis, prefix: str, *, max_failures: int, window: int) -> None:
        self.redis = redis
        self.prefix = f"{prefix}login-failures:"
        self.max_failures = max_failures
        self.window = window

    def _key(self, account: str) -> str:
        return self.prefix + hashlib.sha256(account.encode("utf-8")).hexdigest()

    async def retry_after(self, account: str) -> int | None:
        """Seconds until the account may try again, or None if it may try now."""
        key = self._key(account)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.ttl(key)
            count, ttl = await pipe.execute()
        if count is None or int(count) < self.max_failures:
            return None
        return max(int(ttl), 1) if ttl is not None and int(ttl) > 0 else self.window

    async def record_failure(self, account: str) -> None:
        key = self._key(account)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, self.window, nx=True)
            await pipe.execute()

    async def reset(self, account: str) -> None:
        await self.redis.delete(self._key(account))
