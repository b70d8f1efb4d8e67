"""Prometheus metrics, one `CollectorRegistry` per app (never the process-global default), so
tests and tools can build many apps in one process without "Duplicated timeseries" errors.

Event-driven metrics (HTTP requests, secret refreshes, logins) are counters/histograms updated
when the event happens. State metrics (secret ages, the key ring, connection pools) are read from
the live objects at scrape time by the collectors in `app.observability.collectors`, so they can
never be stale.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from app.mail import MailKind
from app.mail.transports import FAILURE_REASONS
from app.observability import audit
from app.secrets import SecretStore

#: Latency buckets (seconds) for an API whose requests hash passwords (~50-300 ms) and sign JWTs.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Every metric the app exports, bound to one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.scrape_time_collectors: list[Collector] = []
        r = self.registry
        self.http_requests = Counter(
            "http_requests",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_request_duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.secret_last_refresh_success = Gauge(
            "secret_last_refresh_success_timestamp",
            "Unix time of the last successful read of the secret from its source.",
            ["setting", "source"],
            registry=r,
            multiprocess_mode="max",
        )
        self.secret_refresh_failures = Counter(
            "secret_refresh_failures",
            "Failed re-reads of a secret (the last good value is kept).",
            ["setting", "source"],
            registry=r,
        )
        self.secret_rotations = Counter(
            "secret_rotations",
            "Times a new value of the secret was picked up without a restart.",
            ["setting", "source"],
            registry=r,
        )
        self.auth_logins = Counter("auth_logins", "Successful logins.", registry=r)
        self.auth_login_failures = Counter(
            "auth_login_failures",
            "Failed logins (unknown account or wrong password; a wrong second-factor code).",
            ["reason"],
            registry=r,
        )
        self.auth_lockouts = Counter(
            "auth_lockouts",
            "Logins refused because the account is past its failure limit.",
            registry=r,
        )
        self.auth_refresh_reuse_detected = Counter(
            "auth_refresh_reuse_detected",
            "Rotated refresh tokens presented again (the token family was revoked).",
            registry=r,
        )
        self.auth_logouts = Counter("auth_logouts", "Logouts.", registry=r)
        for reason in ("invalid_credentials", "inactive", "invalid_mfa_code"):
            self.auth_login_failures.labels(reason=reason)  # present from 0, for increase()
        self.mails_sent = Counter(
            "mail_sent",
            "Mails accepted by the SMTP server (or written to the outbox), by kind.",
            ["kind", "transport"],
            registry=r,
        )
        self.mail_failures = Counter(
            "mail_failures",
            "Mails given up on (after the retries), by kind and reason; never raised to requests.",
            ["kind", "reason"],
            registry=r,
        )
        for kind in get_args(MailKind):
            for reason in FAILURE_REASONS:
                self.mail_failures.labels(kind, reason)
        # `.labels()` takes a lock and builds a key on every call: per request, look the two
        # children up here instead. Bounded: routes are templates, methods and statuses few.
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    # ---- event hooks ----------------------------------------------------------------------

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.http_requests.labels(method, route, str(status)),
                self.http_request_duration.labels(method, route),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def on_audit_event(self, event: str, fields: Mapping[str, Any]) -> None:
        """Count the auth events the auth API emits through `app.audit`."""
        if event == audit.LOGIN_FAILED:
            self.auth_login_failures.labels(str(fields.get("reason", "invalid_credentials"))).inc()
        elif event == audit.LOGIN_LOCKED:
            self.auth_lockouts.inc()
        elif event == audit.REFRESH_REUSE_DETECTED:
            self.auth_refresh_reuse_detected.inc()
        elif event == audit.LOGIN_SUCCEEDED:
            self.auth_logins.inc()
        elif event == audit.LOGOUT:
            self.auth_logouts.inc()

    # MailObserver (see app.mail.mailer): called by the mailer's worker.

    def mail_sent(self, kind: str, transport: str) -> None:
        self.mails_sent.labels(kind, transport).inc()

    def mail_failed(self, kind: str, reason: str) -> None:
        self.mail_failures.labels(kind, reason).inc()

    # SecretObserver (see app.secrets.observer): called by the store's refresher.

    def secret_refresh_succeeded(self, setting: str, source: str) -> None:
        self.secret_last_refresh_success.labels(setting, source).set(time.time())

    def secret_refresh_failed(self, setting: str, source: str) -> None:
        self.secret_refresh_failures.labels(setting, source).inc()

    def secret_rotated(self, setting: str, source: str) -> None:
        self.secret_rotations.labels(setting, source).inc()

    def track_store(self, store: SecretStore) -> Callable[[], None]:
        """Start from the store's current state (it was loaded before the app existed), then
        follow its refreshes; returns the undo."""
        for name, entry in store.snapshot().items():
            self.secret_last_refresh_success.labels(name, entry.source).set(entry.loaded_at)
            # Children exist from the start, so `increase()` sees the very first failure.
            self.secret_refresh_failures.labels(name, entry.source)
            self.secret_rotations.labels(name, entry.source)
        return store.add_observer(self)

    def add_scrape_collector(self, collector: Collector) -> Callable[[], None]:
        """Read `collector` at every scrape; returns the undo."""
        self.registry.register(collector)
        self.scrape_time_collectors.append(collector)

        def remove() -> None:
            self.registry.unregister(collector)
            self.scrape_time_collectors.remove(collector)

        return remove

    # ---- exposition -------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The text format for a scrape. In multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`),
        event metrics are aggregated over every worker's files; scrape-time gauges describe the
        worker that answered."""
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not directory:
            return generate_latest(self.registry)
        aggregate = CollectorRegistry()
        MultiProcessCollector(aggregate, path=directory)  # type: ignore[no-untyped-call]
        live = CollectorRegistry()
        for collector in self.scrape_time_collectors:
            live.register(collector)
        return generate_latest(aggregate) + generate_latest(live)

    def metric_names(self) -> set[str]:
        """Every sample name this registry can expose (for checking alert rules)."""
        suffixes = {
            "counter": ("_total", "_created"),
            "gauge": ("",),
            "histogram": ("_bucket", "_count", "_sum", "_created"),
            "summary": ("", "_count", "_sum", "_created"),
            "info": ("_info",),
        }
        names: set[str] = set()
        for family in self.registry.collect():
            names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
            names.update(sample.name for sample in family.samples)
        return names
