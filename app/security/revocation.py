"""Revoked access tokens (by `jti`) and sessions (by `sid`), shared by every replica through Redis.

The authoritative list is one Redis sorted set: member `jti:<id>` or `sid:<id>`, score = the
epoch second after which the entry no longer matters (the token would be expired anyway).

Checking it costs a Redis round trip, so each replica keeps a LOCAL MIRROR, fed by a pub/sub
channel: the listener subscribes first, then loads the whole set (so nothing revoked in between
is missed), then applies every published revocation. The mirror is trusted only while the
subscription is demonstrably alive (a PING on the subscribed connection answered within
`STALE_AFTER_SECONDS`). Otherwise every check goes to Redis, and if Redis cannot answer, its
error propagates (the app answers any `RedisError` with 503, app/api/errors.py): a revoked token
is never accepted because Redis is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from redis.asyncio import Redis

logger = logging.getLogger("app.security.revocation")

PING_INTERVAL_SECONDS = 1.0
STALE_AFTER_SECONDS = 3.0
_RETRY_MAX_SECONDS = 2.0


class RevocationList:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.key = f"{prefix}revoked"
        self.channel = f"{prefix}revocations"
        self._local: dict[str, float] = {}
        self._subscribed = False
        self._last_pong = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="revocation-listener")

    async def aclose(self) -> None:
        self._stopping = True
        if self._task is not None:
            # redis-py may absorb a cancellation inside a read; the flag ends the loop anyway.
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=PING_INTERVAL_SECONDS * 3)
            self._task = None
        self._subscribed = False

    @property
    def mirror_is_live(self) -> bool:
        """True while the local mirror may answer checks without asking Redis."""
        return self._subscribed and time.monotonic() - self._last_pong < STALE_AFTER_SECONDS

    # ---- writing ------------------------------------------------------------------------

    async def revoke(self, entries: Mapping[str, float]) -> None:
        """Revoke `{"jti:<id>": until, "sid:<id>": until}`; `until` is an epoch second."""
        if not entries:
            return
        now = time.time()
        latest = int(max(entries.values())) + 1
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self.key, dict(entries))
            pipe.zremrangebyscore(self.key, "-inf", now)
            pipe.expireat(self.key, latest, nx=True)
            pipe.expireat(self.key, latest, gt=True)
            pipe.publish(self.channel, json.dumps(dict(entries)))
            await pipe.execute()
        self._local.update(entries)

    # ---- reading ------------------------------------------------------------------------

    async def is_revoked(self, members: Iterable[str]) -> bool:
        wanted = list(members)
        now = time.time()
        local = self._local
        if any(local.get(member, 0.0) > now for member in wanted):
            return True  # what this replica knows is revoked stays revoked, Redis or not
        if self.mirror_is_live:
            return False
        scores = await self.redis.zmscore(self.key, wanted)
        return any(score is not None and score > now for score in scores)

    # ---- the listener -------------------------------------------------------------------

    async def _listen(self) -> None:
        delay = 0.1
        while not self._stopping:
            pubsub = self.redis.pubsub()
            try:
                await self._follow(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._subscribed:
                    logger.warning(
                        "revocation channel lost (%s); checking Redis per request",
                        type(exc).__name__,
                    )
            finally:
                if self._subscribed:
                    delay = 0.1  # a subscription that was live: the backoff starts over
                self._subscribed = False
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            if self._stopping:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX_SECONDS)

    async def _follow(self, pubsub: Any) -> None:
        await pubsub.subscribe(self.channel)
        # Wait for the server's confirmation, THEN load the set: a revocation published before
        # the subscription existed is in the set; any later one arrives as a message.
        deadline = time.monotonic() + STALE_AFTER_SECONDS
        while True:
            message = await pubsub.get_message(timeout=PING_INTERVAL_SECONDS)
            if message is not None and message.get("type") == "subscribe":
                break
            if self._stopping:
                return
            if time.monotonic() > deadline:
                raise TimeoutError("no subscribe confirmation")
        now = time.time()
        loaded: Any = await self.redis.zrangebyscore(self.key, now, "+inf", withscores=True)
        # Merge rather than replace: what this replica already knew stays revoked even if
        # Redis came back empty (restarted without persistence).
        merged = {m: until for m, until in self._local.items() if until > now}
        merged.update({_text(member): float(score) for member, score in loaded})
        self._local = merged
        self._last_pong = time.monotonic()
        self._subscribed = True
        last_ping = 0.0
        while not self._stopping:
            if time.monotonic() - last_ping >= PING_INTERVAL_SECONDS:
                await pubsub.ping()
                last_ping = time.monotonic()
                self._prune()
            message = await pubsub.get_message(timeout=PING_INTERVAL_SECONDS)
            if message is None:
                continue
            kind = message.get("type")
            if kind == "pong":
                self._last_pong = time.monotonic()
            elif kind == "message":
                self._apply(message.get("data"))

    def _apply(self, data: Any) -> None:
        try:
            entries = json.loads(_text(data))
            self._local.update({str(k): float(v) for k, v in entries.items()})
        except (ValueError, AttributeError, TypeError):
            logger.warning("ignored a malformed revocation message")

    def _prune(self) -> None:
        now = time.time()
        if any(until <= now for until in self._local.values()):
            self._local = {m: until for m, until in self._local.items() if until > now}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
