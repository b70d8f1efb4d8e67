"""Revoked access tokens (by `jti`) and sessions (by `sid`), shared by every replica through Redis.

The authoritative list is one Redis sorted set: member `jti:<id>` or `sid:<id>`, score = the
epoch second after which the entry no longer matters (the token would be expired anyway).

Checking it costs a Redis round trip, so each replica keeps a LOCAL MIRROR, fed by a pub/sub
channel: the listener subscribes first, then loads the whole set (so nothing revoked in between
is missed), then applies every published revocation. The mirror is trusted only while the
subscription is demonstrably alive (`app.mirror.LiveMirror`: a PING on the subscribed connection
answered within `STALE_AFTER_SECONDS`). Otherwise every check goes to Redis, and if Redis cannot
answer, its error propagates (the app answers any `RedisError` with 503): a revoked token is
never accepted because Redis is down.

Revocations only ever ADD: every merge keeps the later expiry (max), so a message or a load
carrying an earlier one (a replay, a forged message from a Redis writer) cannot shorten or undo a
revocation this replica already knows.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from redis.asyncio import Redis

from app.mirror import PING_INTERVAL_SECONDS, STALE_AFTER_SECONDS, LiveMirror

logger = logging.getLogger("app.security.revocation")


class RevocationList(LiveMirror):
    feed = "revocation channel"
    fallback = "checking Redis per request"

    def __init__(self, redis: Redis, prefix: str) -> None:
        super().__init__()
        self.redis = redis
        self.key = f"{prefix}revoked"
        self.channel = f"{prefix}revocations"
        self._local: dict[str, float] = {}

    @property
    def mirror_is_live(self) -> bool:
        return self.is_live

    # ---- writing ------------------------------------------------------------------------

    async def revoke(self, entries: Mapping[str, float]) -> None:
        """Revoke `{"jti:<id>": until, "sid:<id>": until}`; `until` is an epoch second."""
        if not entries:
            return
        now = time.time()
        latest = int(max(entries.values())) + 1
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self.key, dict(entries), gt=True)  # never lowers a known expiry
            pipe.zremrangebyscore(self.key, "-inf", now)
            pipe.expireat(self.key, latest, nx=True)
            pipe.expireat(self.key, latest, gt=True)
            pipe.publish(self.channel, json.dumps(dict(entries)))
            await pipe.execute()
        self._merge(entries)

    # ---- reading ------------------------------------------------------------------------

    async def is_revoked(self, members: Iterable[str]) -> bool:
        wanted = list(members)
        now = time.time()
        local = self._local
        if any(local.get(member, 0.0) > now for member in wanted):
            return True  # what this replica knows is revoked stays revoked, Redis or not
        if self.is_live:
            return False
        scores = await self.redis.zmscore(self.key, wanted)
        return any(score is not None and score > now for score in scores)

    # ---- the feed -----------------------------------------------------------------------

    def _merge(self, entries: Mapping[str, float]) -> None:
        local = self._local
        for member, until in entries.items():
            if until > local.get(member, 0.0):
                local[member] = until

    async def _session(self) -> bool:
        pubsub = self.redis.pubsub()
        try:
            await self._follow(pubsub)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
        return False

    async def _follow(self, pubsub: Any) -> None:
        await pubsub.subscribe(self.channel)
        # Wait for the server's confirmation, THEN load the set: a revocation published before
        # the subscription existed is in the set; any later one arrives as a message.
        deadline = time.monotonic() + STALE_AFTER_SECONDS
        while True:
            message = await pubsub.get_message(timeout=PING_INTERVAL_SECONDS)
            if message is not None and message.get("type") == "subscribe":
                break
            if self.stopping:
                return
            if time.monotonic() > deadline:
                raise TimeoutError("no subscribe confirmation")
        now = time.time()
        loaded: Any = await self.redis.zrangebyscore(self.key, now, "+inf", withscores=True)
        # Merge rather than replace: what this replica already knew stays revoked even if
        # Redis came back empty (restarted without persistence).
        self._local = {m: until for m, until in self._local.items() if until > now}
        self._merge({_text(member): float(score) for member, score in loaded})
        self._went_live()
        last_ping = 0.0
        while not self.stopping:
            if time.monotonic() - last_ping >= PING_INTERVAL_SECONDS:
                await pubsub.ping()
                last_ping = time.monotonic()
                self._prune()
            message = await pubsub.get_message(timeout=PING_INTERVAL_SECONDS)
            if message is None:
                continue
            kind = message.get("type")
            if kind == "pong":
                self._heartbeat()
            elif kind == "message":
                self._apply(message.get("data"))

    def _apply(self, data: Any) -> None:
        try:
            entries = json.loads(_text(data))
            self._merge({str(k): float(v) for k, v in entries.items()})
        except (ValueError, AttributeError, TypeError):
            logger.warning("ignored a malformed revocation message")

    def _prune(self) -> None:
        now = time.time()
        if any(until <= now for until in self._local.values()):
            self._local = {m: until for m, until in self._local.items() if until > now}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
