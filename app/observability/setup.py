"""Wiring: what `create_app` and its lifespan call to get logs, metrics, audit and tracing.

observability = install_observability(app, settings)   # when the app is built
observability.start(app)                               # in the lifespan, resources ready
observability.stop()                                   # in the lifespan's teardown
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI

from app import audit
from app.config import Settings
from app.observability.collectors import (
    KeyRingCollector,
    PoolCollector,
    SecretAgeCollector,
    summarize_ring,
)
from app.observability.endpoint import metrics_router, parse_networks
from app.observability.metrics import Metrics
from app.observability.middleware import RequestObservabilityMiddleware, install_outermost
from app.observability.tracing import Tracing, instrument_app, instrument_resources
from app.secrets import SecretStore
from app.security.tokens import RingSource

logger = logging.getLogger("app.observability")


class Observability:
    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        state = app.state
        self.metrics.add_scrape_collector(SecretAgeCollector(lambda: _state(state, "secrets")))
        self.metrics.add_scrape_collector(KeyRingCollector(lambda: _rings(state)))
        self.metrics.add_scrape_collector(
            PoolCollector(lambda: _state(state, "engine"), lambda: _state(state, "redis"))
        )
        self._tracer_provider = instrument_app(app, settings)
        self._tracing: Tracing | None = None

    def start(self, app: FastAPI) -> None:
        store: SecretStore = app.state.secrets
        self.metrics.track_store(store)
        watch_key_ring(store, app.state.security.tokens.rings)
        if self._tracer_provider is not None:
            self._tracing = instrument_resources(
                self._tracer_provider, app.state.engine, app.state.redis
            )

    def stop(self) -> None:
        if self._tracing is not None:
            self._tracing.shutdown()
            self._tracing = None


def _state(state: Any, name: str) -> Any:
    return getattr(state, name, None)


def _rings(state: Any) -> RingSource | None:
    security = _state(state, "security")
    return security.tokens.rings if security is not None else None


def install_observability(app: FastAPI, settings: Settings) -> Observability:
    """Request ids, access logs and HTTP metrics around everything; `/metrics` if enabled."""
    observability = Observability(app, settings)
    metrics = observability.metrics
    install_outermost(
        app,
        lambda inner: RequestObservabilityMiddleware(
            inner, observe=metrics.observe_request, audit_listener=metrics.on_audit_event
        ),
    )
    if settings.metrics_enabled:
        app.include_router(
            metrics_router(metrics, parse_networks(settings.metrics_allowed_networks))
        )
    app.state.metrics = metrics
    return observability


def watch_key_ring(store: SecretStore, rings: RingSource) -> None:
    """Audit every change of the JWT key ring: which kids it now holds, which were added or
    removed, and which kid signs. Reads the ring the token service parsed (no second parse)."""
    found = rings.snapshot()
    previous: list[tuple[str, ...] | None] = [
        tuple(key.kid for key in found[1].keys) if found is not None else None
    ]

    def on_change(changed: frozenset[str]) -> None:
        if "JWT_KEYS" not in changed:
            return
        current = rings.snapshot()
        if current is None or current[0] is not store.entry("JWT_KEYS"):
            return  # the store refuses invalid rings; nothing changed then
        entry, ring = current
        summary = summarize_ring(ring, entry, time.time())
        audit.key_ring_changed(summary.kids, summary.signing_kid, previous_kids=previous[0])
        previous[0] = summary.kids

    store.on_change(on_change)
