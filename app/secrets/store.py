"""SecretStore: the current value of every secret, where it came from, and its refresh loop.

Readers call `get()`/`entry()` for every use instead of keeping copies, so a rotation reaches the
DB pool, the Redis pool and the key ring without a restart. The whole set is one immutable
snapshot replaced in a single assignment: a reader never sees half of a rotation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from pydantic import SecretStr

from app.audit import SECRET_LOADED, SECRET_REFRESH_FAILED, SECRET_ROTATED, audit
from app.config import SECRET_SETTINGS, Settings
from app.secrets.bindings import Binding, bind_secrets, generated_binding
from app.secrets.errors import ConfigError, ConfigProblem, SecretFetchError
from app.secrets.policy import REQUIRED, check_value
from app.secrets.providers.base import SecretProvider
from app.secrets.providers.file import Signature
from app.secrets.references import load_provider

logger = logging.getLogger("app.secrets")

#: How often file-backed secrets are probed for a change (a stat call; cheap).
FILE_POLL_SECONDS = 1.0

#: How many times a batch of file reads is retried when the files change under it.
CONSISTENT_READ_ATTEMPTS = 5


@dataclass(frozen=True, repr=False)
class SecretEntry:
    setting: str
    value: SecretStr
    source: str
    origin: str
    version: str | None
    loaded_at: float
    ttl: float | None = None  # leased values: seconds of validity from `loaded_at`

    def __repr__(self) -> str:
        return (
            f"SecretEntry(setting={self.setting!r}, source={self.source!r}, "
            f"origin={self.origin!r}, version={self.version!r})"
        )


@dataclass
class _Schedule:
    next_due: float
    signature: Signature = None
    failing: bool = False


ChangeListener = Callable[[frozenset[str]], None]


class RefreshObserver(Protocol):
    """Told about every refresh outcome (metrics use it). Must be quick and must not raise."""

    def secret_refresh_succeeded(self, setting: str, source: str) -> None: ...

    def secret_refresh_failed(self, setting: str, source: str) -> None: ...

    def secret_rotated(self, setting: str, source: str) -> None: ...


@dataclass
class SecretStore:
    settings: Settings
    bindings: Mapping[str, Binding]
    providers: dict[str, SecretProvider] = field(default_factory=dict)
    _snapshot: Mapping[str, SecretEntry] = field(default_factory=lambda: MappingProxyType({}))
    _schedule: dict[str, _Schedule] = field(default_factory=dict)
    _listeners: list[ChangeListener] = field(default_factory=list)
    _observers: list[RefreshObserver] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _problems: dict[str, ConfigProblem] = field(default_factory=dict)

    # ---- construction -------------------------------------------------------------------

    @classmethod
    async def open(cls, settings: Settings, only: Collection[str] | None = None) -> SecretStore:
        """Bind, fetch every secret concurrently, validate; raise ConfigError on any problem.

        `only` limits the store to some settings, for tools that need no more (migrations read
        the database credentials, not the JWT key ring: least privilege for the migration job).
        """
        store, problems = await cls.resolve(settings, only)
        if problems:
            await store.aclose()
            raise ConfigError(problems)
        return store

    @classmethod
    async def resolve(
        cls, settings: Settings, only: Collection[str] | None = None
    ) -> tuple[SecretStore, list[ConfigProblem]]:
        """Bind and load everything that can be, and return the problems next to it.

        The store holds the secrets that resolved cleanly; with problems it must not serve
        (`open` refuses it) but it can still `describe()` itself for `config check`.
        """
        providers: dict[str, SecretProvider] = {}

        def provider_for(scheme: str) -> SecretProvider:
            if scheme not in providers:
                providers[scheme] = load_provider(scheme, settings)
            return providers[scheme]

        bindings, problems = bind_secrets(settings, provider_for)
        if only is not None:
            bindings = {name: b for name, b in bindings.items() if name in only}
            problems = [p for p in problems if p.setting in only]
        store = cls(settings=settings, bindings=bindings, providers=providers)
        required = REQUIRED if only is None else REQUIRED & set(only)
        try:
            problems += await store._load(required - {p.setting for p in problems})
        except BaseException:
            await store.aclose()
            raise
        store._problems = {p.setting: p for p in problems}
        return store, problems

    async def _load(self, required: Collection[str]) -> list[ConfigProblem]:
        problems: list[ConfigProblem] = []
        names = list(self.bindings)
        results = await self._fetch_consistent(names)
        entries: dict[str, SecretEntry] = {}
        now = time.time()
        for name, result in zip(names, results, strict=True):
            binding = self.bindings[name]
            if isinstance(result, str):
                problems.append(ConfigProblem(name, binding.origin, result))
                continue
            issues = check_value(name, result.value.get_secret_value(), self.settings)
            problems.extend(ConfigProblem(name, binding.origin, issue) for issue in issues)
            if not issues:
                entries[name] = result
        for name in sorted(set(required) - set(self.bindings)):
            if self.settings.app_env == "development":
                entries[name] = self._generate(name)
            else:
                searched = (
                    f"searched env {name}, {name}_FILE and SECRETS_DIR={self.settings.secrets_dir}"
                )
                problems.append(ConfigProblem(name, searched, missing_message(name)))
        if problems:
            return problems
        self._snapshot = MappingProxyType(entries)
        for name, entry in entries.items():
            self._schedule[name] = _Schedule(self._next_due(now, entry.ttl), self._signature(name))
            audit(
                SECRET_LOADED,
                setting=name,
                source=entry.source,
                origin=entry.origin,
                version=entry.version,
            )
        return problems

    async def _fetch_consistent(self, names: list[str]) -> list[SecretEntry | str]:
        """Fetch `names` so that file-backed values all come from ONE state of the files.

        Kubernetes swaps every file of a mount at once (one `..data` rename), but reading two
        files is not atomic: a swap between the reads would pair an old value with a new one.
        So the file signatures are taken before and after the reads (a seqlock); if any moved,
        the batch is read again.
        """
        files = [n for n in names if self.bindings[n].signature is not None]
        before = [self._signature(n) for n in files]
        results = dict(
            zip(
                names,
                await asyncio.gather(*(self._fetch(self.bindings[n]) for n in names)),
                strict=True,
            )
        )
        for _attempt in range(CONSISTENT_READ_ATTEMPTS - 1):
            after = [self._signature(n) for n in files]
            if after == before:
                break
            before = after  # only the files are read again; remote backends are not re-asked
            results.update(
                zip(
                    files,
                    await asyncio.gather(*(self._fetch(self.bindings[n]) for n in files)),
                    strict=True,
                )
            )
        return [results[n] for n in names]

    def _generate(self, name: str) -> SecretEntry:
        value = secrets.token_urlsafe(48)
        self.bindings = {**self.bindings, name: generated_binding(name, value)}
        logger.warning(
            "%s is not set: generated a random development value. Tokens will not survive a "
            "restart or be shared between workers; run `python -m app secrets init`.",
            name,
        )
        return SecretEntry(
            name,
            SecretStr(value),
            "generated",
            self.bindings[name].origin,
            "generated",
            time.time(),
        )

    # ---- reading ------------------------------------------------------------------------

    def get(self, name: str) -> SecretStr | None:
        entry = self._snapshot.get(name)
        return entry.value if entry is not None else None

    def entry(self, name: str) -> SecretEntry | None:
        return self._snapshot.get(name)

    def snapshot(self) -> Mapping[str, SecretEntry]:
        """All current entries at one instant (immutable)."""
        return self._snapshot

    def values(self) -> list[str]:
        """Every loaded secret value, for the log redaction filter."""
        return [e.value.get_secret_value() for e in self._snapshot.values()]

    def on_change(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def add_observer(self, observer: RefreshObserver) -> None:
        """Report each refresh's outcome to `observer` (success, failure, rotation)."""
        self._observers.append(observer)

    def _notify(self, event: str, binding: Binding) -> None:
        for observer in list(self._observers):
            try:
                getattr(observer, event)(binding.setting, binding.source)
            except Exception:
                logger.exception("secret refresh observer failed on %s", event)

    # ---- refreshing ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the background refresh loop (idempotent)."""
        if self._task is None and any(not b.is_static for b in self.bindings.values()):
            self._task = asyncio.create_task(self._run(), name="secret-refresh")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for provider in self.providers.values():
            with contextlib.suppress(Exception):
                await provider.aclose()

    async def refresh(self, names: Iterable[str] | None = None) -> frozenset[str]:
        """Re-fetch `names` (default: every non-static secret) now; return what changed."""
        targets = [
            n
            for n in (names if names is not None else self.bindings)
            if n in self.bindings and not self.bindings[n].is_static
        ]
        if not targets:
            return frozenset()
        results = await self._fetch_consistent(targets)
        updated: dict[str, SecretEntry] = {}
        renewed: dict[str, SecretEntry] = {}  # same value, fresh lease/version: no listeners
        now = time.time()
        for name, result in zip(targets, results, strict=True):
            binding = self.bindings[name]
            schedule = self._schedule.setdefault(name, _Schedule(0.0))
            current = self._snapshot.get(name)
            schedule.next_due = self._next_due(now, self._remaining(result, current, now))
            schedule.signature = self._signature(name)
            if isinstance(result, str):
                self._refresh_failed(binding, result, schedule)
                continue
            new_value = result.value.get_secret_value()
            if current is not None and current.value.get_secret_value() == new_value:
                self._refresh_ok(binding, schedule)
                if (result.ttl, result.version) != (current.ttl, current.version):
                    renewed[name] = result
                continue
            issues = check_value(name, new_value, self.settings)
            if issues:
                self._refresh_failed(binding, "; ".join(issues), schedule)
                continue
            self._refresh_ok(binding, schedule)
            self._notify("secret_rotated", binding)
            updated[name] = result
            audit(
                SECRET_ROTATED,
                setting=name,
                source=binding.source,
                origin=binding.origin,
                version=result.version,
                previous_version=current.version if current is not None else None,
            )
        if renewed:
            self._snapshot = MappingProxyType({**self._snapshot, **renewed})
        if not updated:
            return frozenset()
        self._snapshot = MappingProxyType({**self._snapshot, **updated})
        changed = frozenset(updated)
        for listener in list(self._listeners):
            try:
                listener(changed)
            except Exception:
                logger.exception("secret change listener failed for %s", sorted(changed))
        return changed

    async def _run(self) -> None:
        poll = min(FILE_POLL_SECONDS, self.settings.secrets_refresh_seconds)
        while True:
            await asyncio.sleep(poll)
            due = self._due(time.time())
            if due:
                try:
                    await self.refresh(due)
                except Exception:  # never let the loop die: the last good values keep serving
                    logger.exception("secret refresh loop error")

    def _due(self, now: float) -> list[str]:
        """Secrets whose refresh interval passed; and, when ANY file changed, every file-backed
        secret, so one `..data` swap is applied as one snapshot, never file by file."""
        due: list[str] = []
        file_changed = False
        for name, binding in self.bindings.items():
            if binding.is_static:
                continue
            schedule = self._schedule.setdefault(name, _Schedule(0.0))
            if binding.signature is not None and binding.signature() != schedule.signature:
                file_changed = True
            elif now >= schedule.next_due:
                due.append(name)
        if file_changed:
            due += [
                name
                for name, binding in self.bindings.items()
                if binding.signature is not None and name not in due
            ]
        return due

    # ---- helpers ------------------------------------------------------------------------

    async def _fetch(self, binding: Binding) -> SecretEntry | str:
        """Return an entry, or a one-line reason (never containing the value)."""
        timeout = self.settings.secrets_fetch_timeout_seconds
        try:
            fetched = await asyncio.wait_for(binding.fetch(), timeout)
        except TimeoutError:
            return f"timed out after {timeout:g}s reading {binding.origin}"
        except SecretFetchError as exc:
            return f"{exc.kind}: {exc}" if exc.kind != "error" else str(exc)
        except Exception as exc:  # an SDK error: its type, not its text, which may echo data
            return f"cannot be read ({type(exc).__name__})"
        return SecretEntry(
            binding.setting,
            SecretStr(fetched.value),
            binding.source,
            binding.origin,
            fetched.version,
            time.time(),
            fetched.ttl,
        )

    def _signature(self, name: str) -> Signature:
        binding = self.bindings.get(name)
        return binding.signature() if binding and binding.signature else None

    def _next_due(self, now: float, ttl: float | None = None) -> float:
        interval = self.settings.secrets_refresh_seconds * random.uniform(0.8, 1.0)  # noqa: S311
        if ttl is not None:
            # A lease is renewed (or re-read) at half its remaining life, so a failed attempt
            # still leaves time for retries before the credentials expire.
            interval = min(interval, max(ttl / 2, 1.0))
        return now + interval

    @staticmethod
    def _remaining(
        result: SecretEntry | str, current: SecretEntry | None, now: float
    ) -> float | None:
        """Seconds of validity left: of the new value, or of the last good one on failure."""
        if isinstance(result, SecretEntry):
            return result.ttl
        if current is not None and current.ttl is not None:
            return max(current.loaded_at + current.ttl - now, 0.0)
        return None

    def _refresh_failed(self, binding: Binding, reason: str, schedule: _Schedule) -> None:
        schedule.failing = True
        self._notify("secret_refresh_failed", binding)
        logger.warning(
            "secret refresh failed for %s (%s): %s; keeping the last good value",
            binding.setting,
            binding.source,
            reason,
        )
        audit(
            SECRET_REFRESH_FAILED,
            setting=binding.setting,
            source=binding.source,
            origin=binding.origin,
            reason=reason,
        )

    def _refresh_ok(self, binding: Binding, schedule: _Schedule) -> None:
        self._notify("secret_refresh_succeeded", binding)
        if schedule.failing:
            logger.info("secret refresh recovered for %s (%s)", binding.setting, binding.source)
        schedule.failing = False

    def describe(self) -> list[dict[str, Any]]:
        """Rows for `config check`: setting, source, origin, version, status. Never values."""
        rows: list[dict[str, Any]] = []
        for name in SECRET_SETTINGS:
            entry = self._snapshot.get(name)
            problem = self._problems.get(name)
            binding = self.bindings.get(name)
            if problem is not None:
                rows.append(
                    {
                        "setting": name,
                        "source": binding.source if binding else "-",
                        "origin": problem.origin,
                        "version": None,
                        "status": "error",
                        "problem": problem.message,
                    }
                )
            elif entry is not None:
                status = "generated" if entry.source == "generated" else "ok"
                rows.append(
                    {
                        "setting": name,
                        "source": entry.source,
                        "origin": entry.origin,
                        "version": entry.version,
                        "status": status,
                    }
                )
            elif binding is not None:  # resolved fine, but the set as a whole was refused
                rows.append(
                    {
                        "setting": name,
                        "source": binding.source,
                        "origin": binding.origin,
                        "version": None,
                        "status": "ok",
                    }
                )
            else:
                status = "missing" if name in REQUIRED else "not set"
                rows.append(
                    {
                        "setting": name,
                        "source": "-",
                        "origin": "",
                        "version": None,
                        "status": status,
                    }
                )
        return rows


def missing_message(name: str) -> str:
    return (
        f"is required but not set; set {name}, {name}_FILE, or put a file named "
        f"{name.lower()} in SECRETS_DIR (`python -m app secrets init` makes dev files)"
    )


__all__ = ["RefreshObserver", "SecretEntry", "SecretStore", "missing_message"]
