"""Scrape-time collectors: read the live objects when Prometheus asks, so a gauge can never
disagree with the state it describes (a secret's age, the key ring, the pools).

The lifespan registers them once the objects exist and removes them before closing those objects.
Pools are read through their public APIs only (SQLAlchemy's pool methods, redis-py's
`get_connection_count`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from app.config import JWT_KEYS
from app.keys.signing import KeyRing
from app.secrets import SecretEntry, SecretStore


def value_created_at(entry: SecretEntry) -> float:
    """When the current value was created, as well as we can know it: the file's mtime for
    file-backed values (their version is `mtime:<ns>`), else when this process loaded it."""
    version = entry.version or ""
    if version.startswith("mtime:"):
        try:
            return int(version.removeprefix("mtime:")) / 1e9
        except ValueError:
            pass
    return entry.loaded_at


class SecretAgeCollector(Collector):
    def __init__(self, store: SecretStore) -> None:
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        age = GaugeMetricFamily(
            "secret_age_seconds",
            "Seconds since the current value of the secret was created (file mtime), or loaded "
            "by this process when its source reports no creation time.",
            labels=["setting", "source"],
        )
        now = time.time()
        for name, entry in sorted(self._store.snapshot().items()):
            age.add_metric([name, entry.source], max(0.0, now - value_created_at(entry)))
        yield age


@dataclass(frozen=True)
class RingSummary:
    kids: tuple[str, ...]
    signing_kid: str | None
    signing_created_at: float | None


def summarize_ring(ring: KeyRing, entry: SecretEntry, now: float) -> RingSummary:
    """The ring parsed from `entry` (JWT_KEYS): its kids, the key signing at `now`, and when
    that key was created (`iat`, else `nbf`, else the ring value's own creation time)."""
    signing = ring.signing_key(now)
    created: float | None = None
    if signing is not None:
        created = signing.iat if signing.iat is not None else signing.nbf
        if created is None:
            created = value_created_at(entry)
    return RingSummary(
        tuple(key.kid for key in ring.keys), signing.kid if signing is not None else None, created
    )


class KeyRingCollector(Collector):
    """`jwt_keys_in_ring` and `jwt_signing_key_age_seconds{kid}` from the live JWT_KEYS."""

    def __init__(self, store: SecretStore) -> None:
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        count = GaugeMetricFamily("jwt_keys_in_ring", "Keys in the JWT key ring (verify + sign).")
        age = GaugeMetricFamily(
            "jwt_signing_key_age_seconds",
            "Age of the key that signs new tokens now (from its iat, else nbf, else the ring's "
            "creation time).",
            labels=["kid"],
        )
        entry = self._store.entry(JWT_KEYS.name)
        if entry is not None:
            ring: KeyRing = entry.parsed
            now = time.time()
            summary = summarize_ring(ring, entry, now)
            count.add_metric([], float(len(summary.kids)))
            if summary.signing_kid is not None and summary.signing_created_at is not None:
                age.add_metric([summary.signing_kid], max(0.0, now - summary.signing_created_at))
        yield count
        yield age


class PoolCollector(Collector):
    """Connection pool gauges for the SQLAlchemy engine and the Redis client."""

    def __init__(self, engine: AsyncEngine, redis: Redis) -> None:
        self._engine = engine
        self._redis = redis

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._database()
        yield from self._redis_pool()

    def _database(self) -> Iterator[GaugeMetricFamily]:
        size = GaugeMetricFamily("db_pool_size", "Configured persistent connections of the pool.")
        checked_out = GaugeMetricFamily("db_pool_checked_out", "Connections in use.")
        checked_in = GaugeMetricFamily("db_pool_checked_in", "Idle connections in the pool.")
        overflow = GaugeMetricFamily(
            "db_pool_overflow", "Connections open beyond the pool size (max_overflow)."
        )
        pool = self._engine.pool
        if isinstance(pool, QueuePool):
            size.add_metric([], float(pool.size()))
            checked_out.add_metric([], float(pool.checkedout()))
            checked_in.add_metric([], float(pool.checkedin()))
            # QueuePool counts overflow from -pool_size; only the excess is interesting.
            overflow.add_metric([], float(max(0, pool.overflow())))
        yield from (size, checked_out, checked_in, overflow)

    def _redis_pool(self) -> Iterator[GaugeMetricFamily]:
        connections = GaugeMetricFamily(
            "redis_pool_connections", "Open Redis connections by state.", labels=["state"]
        )
        maximum = GaugeMetricFamily(
            "redis_pool_max_connections", "Most connections the Redis pool may open."
        )
        pool = self._redis.connection_pool
        counts = {"idle": 0, "in_use": 0}
        for count, attributes in pool.get_connection_count():
            state = next((v for k, v in attributes.items() if k.endswith("connection.state")), "")
            counts["idle" if state == "idle" else "in_use"] += count
        for state, count in counts.items():
            connections.add_metric([state], float(count))
        if isinstance(pool.max_connections, int):
            maximum.add_metric([], float(pool.max_connections))
        yield connections
        yield maximum
