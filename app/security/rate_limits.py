"""Per-client-IP request limits (SPEC section 2, `RATE_LIMIT_*`), shared by every replica.

Implemented with the `limits` library (sliding window counter) on the app's own Redis pool, so
the limits are shared by replicas and follow a Redis password rotation like every other call.
A Redis error propagates (the app answers 503): a limit never fails open.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.asyncio import Redis

from app.security.errors import RateLimited


def parse_rate(text: str) -> RateLimitItem:
    """`N/second|minute|hour|day`; ValueError with a message that names the format."""
    try:
        item = parse(text)
    except ValueError:
        raise ValueError("must look like N/second, N/minute, N/hour or N/day") from None
    if item.amount < 1:
        raise ValueError("must allow at least one request")
    return item


class RateLimits:
    def __init__(self, redis: Redis, prefix: str, rates: Mapping[str, str]) -> None:
        storage = RedisStorage(
            "async+redis://",
            implementation="redispy",
            key_prefix=f"{prefix}limits",
            # Documented by `limits`, though its **options are annotated as scalars only.
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]
        )
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._items = {name: parse_rate(rate) for name, rate in rates.items()}

    async def hit(self, name: str, client_key: str) -> None:
        """Count one `name` request from `client_key`; raise RateLimited past the limit."""
        item = self._items[name]
        if await self._limiter.hit(item, name, client_key):
            return
        stats = await self._limiter.get_window_stats(item, name, client_key)
        raise RateLimited(max(1, math.ceil(stats.reset_time - time.time())))
