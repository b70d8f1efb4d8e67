"""Data-key metrics: how many sealed values each `DATA_KEYS` key still protects.

A data-key rotation is done when the old key protects nothing (`data reencrypt` ran) and can be
retired; a kid that values name but the ring lacks means values that can no longer be opened.
Both are facts about the DATABASE, so they are counted there: one GROUP BY per sealed column
(`app.security.sealed.count_by_kid`), in the background every `DATA_KEY_METRICS_SECONDS`
(default 60 s), never at scrape time (a collector is synchronous and a scrape must stay cheap
whatever the table sizes). The scrape reads the last counts and the LIVE ring, so the `state`
label follows a rotation at once:

- `data_key_values{kid, state}`: sealed values per kid; `state` is `current` (the key that
  encrypts now), `previous` (in the ring, no longer encrypting: re-encrypt, then retire it) or
  `missing` (not in the ring: those values cannot be opened);
- `data_key_values_counted_timestamp`: when the counts were last taken (staleness is visible);
- `data_keys_in_ring`: keys in the ring.
Every replica counts the same database: aggregate with `max`, not `sum`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import DATA_KEYS
from app.keys.data import DataKeyRing
from app.secrets import SecretStore
from app.security.sealed import count_by_kid, totals

logger = logging.getLogger("app.observability")


class DataKeyUsage(Collector):
    def __init__(self, engine: AsyncEngine, store: SecretStore, interval: float) -> None:
        self.engine = engine
        self.store = store
        self.interval = interval
        self.counts: dict[str, int] | None = None
        self.counted_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> dict[str, int]:
        async with self.engine.connect() as connection:
            counts = totals(await count_by_kid(connection))
        self.counts, self.counted_at = counts, time.time()
        return counts

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="data-key-usage")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # the last counts stay; their timestamp shows the age
                logger.warning(
                    "counting sealed values per data key failed (%s)", type(exc).__name__
                )
            await asyncio.sleep(self.interval)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        values = GaugeMetricFamily(
            "data_key_values",
            "Values sealed under each DATA_KEYS kid (state: current encrypts, previous awaits "
            "data reencrypt and retirement, missing cannot be opened).",
            labels=["kid", "state"],
        )
        counted = GaugeMetricFamily(
            "data_key_values_counted_timestamp",
            "Unix time of the last count of sealed values per kid.",
        )
        in_ring = GaugeMetricFamily("data_keys_in_ring", "Keys in the DATA_KEYS ring.")
        ring: DataKeyRing | None = self.store.parsed(DATA_KEYS)
        current = ring.encrypting_key() if ring is not None else None
        if ring is not None:
            in_ring.add_metric([], float(len(ring)))
            # Every kid of the ring appears (0 when unused), so "the old key is unused" is a
            # visible 0 rather than an absent series.
            kids = {key.kid: 0 for key in ring.keys}
        else:
            kids = {}
        kids.update(self.counts or {})
        if self.counts is not None:
            for kid, count in sorted(kids.items()):
                if ring is None or ring.get(kid) is None:
                    state = "missing"
                elif current is not None and kid == current.kid:
                    state = "current"
                else:
                    state = "previous"
                values.add_metric([kid, state], float(count))
        if self.counted_at is not None:
            counted.add_metric([], self.counted_at)
        yield values
        yield counted
        yield in_ring
