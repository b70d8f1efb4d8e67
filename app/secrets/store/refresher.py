"""The refresh loop: notice rotated secrets and swap them in without a restart.

File-backed secrets are probed every `FILE_POLL_SECONDS` (a stat call) and re-read when one
changes; every other source is re-read when its interval (`SECRETS_REFRESH_SECONDS`, with
jitter, or half a lease's remaining life) has passed. A failed read or a value its declaration
refuses keeps the last good value.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from app.secrets.bindings import Binding
from app.secrets.provider import Fetched
from app.secrets.providers.file import Signature
from app.secrets.spec import CheckContext, SecretsConfig, SecretSpec
from app.secrets.store import loader
from app.secrets.store.entries import (
    SECRET_REFRESH_FAILED,
    SECRET_ROTATED,
    FetchFailure,
    SecretEntry,
)

logger = logging.getLogger("app.secrets")

#: How often file-backed secrets are probed for a change (a stat call; cheap).
FILE_POLL_SECONDS = 1.0


@dataclass
class _Schedule:
    next_due: float
    signature: Signature = None
    failing: bool = False


class Refreshable(Protocol):
    """What the refresher needs of the store that owns it."""

    config: SecretsConfig
    bindings: Mapping[str, Binding]

    @property
    def fetch_timeout(self) -> float: ...

    @property
    def check_context(self) -> CheckContext: ...

    def entry(self, name: str) -> SecretEntry | None: ...

    def registry_spec(self, name: str) -> SecretSpec[Any]: ...

    def notify(self, event: str, binding: Binding) -> None: ...

    def emit(self, event: str, **fields: Any) -> None: ...

    def publish(
        self, updated: Mapping[str, SecretEntry], renewed: Mapping[str, SecretEntry]
    ) -> frozenset[str]: ...


class Refresher:
    def __init__(self, store: Refreshable) -> None:
        self.store = store
        self._schedule: dict[str, _Schedule] = {}
        self._task: asyncio.Task[None] | None = None

    def scheduled(self, entries: Iterable[SecretEntry]) -> None:
        """Start each loaded entry's clock (called once the initial load is accepted)."""
        now = time.time()
        for entry in entries:
            binding = self.store.bindings.get(entry.setting)
            self._schedule[entry.setting] = _Schedule(
                self._next_due(now, entry.ttl), loader.signature(binding)
            )

    # ---- the loop -----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None and any(not b.is_static for b in self.store.bindings.values()):
            self._task = asyncio.create_task(self._run(), name="secret-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        poll = min(FILE_POLL_SECONDS, self.store.config.secrets_refresh_seconds)
        while True:
            await asyncio.sleep(poll)
            due = self._due(time.time())
            if due:
                try:
                    await self.refresh(due)
                except Exception:  # never let the loop die: the last good values keep serving
                    logger.exception("secret refresh loop error")

    def _due(self, now: float) -> list[str]:
        """Secrets whose interval passed; and, when ANY file changed, every file-backed secret,
        so one `..data` swap is applied as one snapshot, never file by file."""
        due: list[str] = []
        file_changed = False
        bindings = self.store.bindings
        for name, binding in bindings.items():
            if binding.is_static:
                continue
            schedule = self._schedule.setdefault(name, _Schedule(0.0))
            if binding.signature is not None and binding.signature() != schedule.signature:
                file_changed = True
            elif now >= schedule.next_due:
                due.append(name)
        if file_changed:
            due += [
                n
                for n, b in bindings.items()
                if b.signature is not None and not b.is_static and n not in due
            ]
        return due

    # ---- one refresh --------------------------------------------------------------------

    async def refresh(self, names: Iterable[str] | None = None) -> frozenset[str]:
        """Re-read `names` (default: every non-static secret) now; return what changed."""
        store = self.store
        bindings = store.bindings
        targets = [
            n
            for n in (names if names is not None else bindings)
            if n in bindings and not bindings[n].is_static
        ]
        if not targets:
            return frozenset()
        reads = await loader.fetch_consistent(bindings, targets, store.fetch_timeout)
        updated: dict[str, SecretEntry] = {}
        renewed: dict[str, SecretEntry] = {}  # same value, fresh lease/version: no listeners
        now = time.time()
        for name in targets:
            binding, read = bindings[name], reads[name]
            schedule = self._schedule.setdefault(name, _Schedule(0.0))
            current = store.entry(name)
            schedule.signature = loader.signature(binding)
            if isinstance(read, FetchFailure):
                schedule.next_due = self._next_due(now, _remaining(current, now))
                self._failed(binding, read.reason, schedule)
                continue
            schedule.next_due = self._next_due(now, read.ttl)
            if current is not None and current.value.get_secret_value() == read.value:
                self._succeeded(binding, schedule)
                if (read.ttl, read.version) != (current.ttl, current.version):
                    renewed[name] = _renewed(current, read)
                continue
            accepted = await loader.accept(
                store.registry_spec(name), binding, read, store.check_context
            )
            if isinstance(accepted, FetchFailure):
                self._failed(binding, accepted.reason, schedule)
                continue
            self._succeeded(binding, schedule)
            store.notify("secret_rotated", binding)
            updated[name] = accepted
            store.emit(
                SECRET_ROTATED,
                setting=name,
                source=binding.source,
                origin=binding.origin,
                version=accepted.version,
                previous_version=current.version if current is not None else None,
            )
        return store.publish(updated, renewed)

    # ---- helpers ------------------------------------------------------------------------

    def _next_due(self, now: float, ttl: float | None = None) -> float:
        interval = self.store.config.secrets_refresh_seconds * random.uniform(0.8, 1.0)  # noqa: S311
        if ttl is not None:
            # A lease is renewed (or re-read) at half its remaining life, so a failed attempt
            # still leaves time for retries before the credentials expire.
            interval = min(interval, max(ttl / 2, 1.0))
        return now + interval

    def _failed(self, binding: Binding, reason: str, schedule: _Schedule) -> None:
        schedule.failing = True
        self.store.notify("secret_refresh_failed", binding)
        logger.warning(
            "secret refresh failed for %s (%s): %s; keeping the last good value",
            binding.setting,
            binding.source,
            reason,
        )
        self.store.emit(
            SECRET_REFRESH_FAILED,
            setting=binding.setting,
            source=binding.source,
            origin=binding.origin,
            reason=reason,
        )

    def _succeeded(self, binding: Binding, schedule: _Schedule) -> None:
        self.store.notify("secret_refresh_succeeded", binding)
        if schedule.failing:
            logger.info("secret refresh recovered for %s (%s)", binding.setting, binding.source)
        schedule.failing = False


def _remaining(current: SecretEntry | None, now: float) -> float | None:
    """Seconds of validity left in the last good value (a lease), so retries come in time."""
    if current is not None and current.ttl is not None:
        return max(current.loaded_at + current.ttl - now, 0.0)
    return None


def _renewed(current: SecretEntry, read: Fetched) -> SecretEntry:
    """The same value with the new lease and version (no re-parse: the value did not change)."""
    return SecretEntry(
        current.setting,
        current.value,
        current.parsed,
        current.source,
        current.origin,
        read.version,
        time.time(),
        read.ttl,
    )
