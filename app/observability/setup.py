"""Wiring: what `create_app` and its lifespan call to get logs, metrics, audit and tracing.

    observability = Observability(settings)          # when the app is built (no I/O)
    app = Application(edge=observability.edge, ...)  # request ids, access log, HTTP metrics
    await stack.enter_async_context(                 # in the lifespan, once resources exist;
        observability.attached(store, engine, redis))    # undone before they close

The request middleware wraps the whole ASGI app at its edge (outside Starlette's error
middleware), so even an unhandled error's 500 carries a request id and is counted.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp

from app.config import JWT_KEYS, Settings
from app.keys.signing import KeyRing
from app.observability import audit
from app.observability.collectors import (
    KeyRingCollector,
    PoolCollector,
    SecretAgeCollector,
    summarize_ring,
)
from app.observability.data_keys import DataKeyUsage
from app.observability.metrics import Metrics
from app.observability.middleware import DefaultHeaders, RequestObservabilityMiddleware
from app.observability.tracing import check_tracing_available, instrument_app, instrument_resources
from app.secrets import SecretStore


class Observability:
    """The metrics registry of one app, and what it hooks into the app and its resources."""

    def __init__(self, settings: Settings) -> None:
        check_tracing_available(settings)
        self.settings = settings
        self.metrics = Metrics()
        self._tracer_provider: Any = None

    def edge(self, inner: ASGIApp, *, default_headers: DefaultHeaders | None = None) -> ASGIApp:
        """The outermost ASGI layer: request id, access log line, HTTP metrics, and the
        `default_headers` every response carries."""
        return RequestObservabilityMiddleware(
            inner,
            observe=self.metrics.observe_request,
            audit_listener=self.metrics.on_audit_event,
            default_headers=default_headers,
        )

    def instrument(self, app: Any) -> None:
        """Request spans, when tracing is configured (before the app starts serving)."""
        self._tracer_provider = instrument_app(app, self.settings)

    @asynccontextmanager
    async def attached(
        self, store: SecretStore, engine: AsyncEngine, redis: Redis
    ) -> AsyncIterator[None]:
        """Follow the live resources (scrape-time gauges, secret refresh metrics, key-ring
        audit, sealed values per data key, database and Redis spans) until the block ends,
        then let go of them."""
        async with AsyncExitStack() as stack:
            for collector in (
                SecretAgeCollector(store),
                KeyRingCollector(store),
                PoolCollector(engine, redis),
            ):
                stack.callback(self.metrics.add_scrape_collector(collector))
            stack.callback(self.metrics.track_store(store))
            stack.callback(watch_key_ring(store))
            usage = DataKeyUsage(engine, store, self.settings.data_key_metrics_seconds)
            stack.callback(self.metrics.add_scrape_collector(usage))
            usage.start()  # one GROUP BY per sealed column, every DATA_KEY_METRICS_SECONDS
            stack.push_async_callback(usage.aclose)
            if self._tracer_provider is not None:
                tracing = instrument_resources(self._tracer_provider, engine, redis)
                stack.callback(tracing.shutdown)
            yield


def watch_key_ring(store: SecretStore) -> Callable[[], None]:
    """Audit every change of the JWT key ring: which kids it now holds, which were added or
    removed, and which kid signs. Reads the ring the store parsed (no second parse)."""
    entry = store.entry(JWT_KEYS.name)
    previous: list[tuple[str, ...] | None] = [
        tuple(key.kid for key in entry.parsed.keys) if entry is not None else None
    ]

    def on_change(changed: frozenset[str]) -> None:
        current = store.entry(JWT_KEYS.name)
        if JWT_KEYS.name not in changed or current is None:
            return
        ring: KeyRing = current.parsed
        summary = summarize_ring(ring, current, time.time())
        audit.key_ring_changed(summary.kids, summary.signing_kid, previous_kids=previous[0])
        previous[0] = summary.kids

    return store.on_change(on_change)
