"""SecretStore: the current value of every declared secret, where it came from, and its refresh.

Readers call `get()` / `parsed()` / `entry()` for every use instead of keeping copies, so a
rotation reaches the DB pool, the Redis pool and the key ring without a restart. The whole set is
one immutable snapshot replaced in a single assignment: a reader never sees half of a rotation.
Each entry keeps the value parsed by its declaration, so a key ring is parsed once per value.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Protocol, TypeVar, cast

from pydantic import SecretStr

from app.secrets.bindings import Binding, bind_secrets, generated_binding
from app.secrets.errors import ConfigError, ConfigProblem
from app.secrets.provider import Fetched, SecretProvider
from app.secrets.references import load_provider
from app.secrets.spec import CheckContext, SecretRegistry, SecretsConfig, SecretSpec
from app.secrets.store import loader
from app.secrets.store.entries import SECRET_LOADED, FetchFailure, SecretEntry
from app.secrets.store.refresher import Refresher

logger = logging.getLogger("app.secrets")

T = TypeVar("T")

ChangeListener = Callable[[frozenset[str]], None]
#: Receives the store's audit events (`secret.loaded`, ...): identifiers only, never values.
EventSink = Callable[..., None]


class RefreshObserver(Protocol):
    """Told about every refresh outcome (metrics use it). Must be quick and must not raise."""

    def secret_refresh_succeeded(self, setting: str, source: str) -> None: ...

    def secret_refresh_failed(self, setting: str, source: str) -> None: ...

    def secret_rotated(self, setting: str, source: str) -> None: ...


class SecretStore:
    def __init__(
        self,
        config: SecretsConfig,
        registry: SecretRegistry,
        bindings: Mapping[str, Binding],
        providers: Mapping[str, SecretProvider] | None = None,
        events: EventSink | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.bindings: Mapping[str, Binding] = dict(bindings)
        self.providers = dict(providers or {})
        self._events = events
        self._snapshot: Mapping[str, SecretEntry] = MappingProxyType({})
        self._values_cache: tuple[Mapping[str, SecretEntry], list[str]] | None = None
        self._listeners: list[ChangeListener] = []
        self._observers: list[RefreshObserver] = []
        self._refresher = Refresher(self)
        #: What `resolve` found wrong, by setting (for `config check`).
        self.problems: Mapping[str, ConfigProblem] = {}

    # ---- construction -------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        config: SecretsConfig,
        registry: SecretRegistry,
        *,
        only: Collection[str] | None = None,
        events: EventSink | None = None,
    ) -> SecretStore:
        """Bind, fetch every declared secret concurrently, parse and check; raise ConfigError
        on any problem.

        `only` limits the store to some secrets, for tools that need no more (migrations read
        the database credentials, not the JWT key ring: least privilege for the migration job).
        """
        store, problems = await cls.resolve(config, registry, only=only, events=events)
        if problems:
            await store.aclose()
            raise ConfigError(problems)
        return store

    @classmethod
    async def resolve(
        cls,
        config: SecretsConfig,
        registry: SecretRegistry,
        *,
        only: Collection[str] | None = None,
        events: EventSink | None = None,
    ) -> tuple[SecretStore, list[ConfigProblem]]:
        """Bind and load everything that can be, and return the problems next to it.

        With problems the store must not serve (`open` refuses it), but `config check` can
        still show what did resolve."""
        providers: dict[str, SecretProvider] = {}

        def provider_for(scheme: str) -> SecretProvider:
            if scheme not in providers:
                providers[scheme] = load_provider(scheme, config)
            return providers[scheme]

        bindings, problems = bind_secrets(config, registry, provider_for)
        if only is not None:
            bindings = {name: b for name, b in bindings.items() if name in only}
            problems = [p for p in problems if p.setting in only]
        store = cls(config, registry, bindings, providers, events)
        wanted = [s for s in registry if only is None or s.name in only]
        try:
            problems += await store._load(wanted, {p.setting for p in problems})
        except BaseException:
            await store.aclose()
            raise
        store.problems = {p.setting: p for p in problems}
        return store, problems

    async def _load(self, wanted: list[SecretSpec[Any]], failed: set[str]) -> list[ConfigProblem]:
        problems: list[ConfigProblem] = []
        names = [s.name for s in wanted if s.name in self.bindings]
        reads = await loader.fetch_consistent(self.bindings, names, self.fetch_timeout)
        entries: dict[str, SecretEntry] = {}
        for spec in wanted:
            read = reads.get(spec.name)
            if read is None:
                if spec.required and spec.name not in failed:
                    # True or "production": both generate where allowed, else a problem.
                    generated = await self._generated(spec)
                    if isinstance(generated, SecretEntry):
                        entries[spec.name] = generated
                    else:
                        problems.append(generated)
                continue
            binding = self.bindings[spec.name]
            accepted = (
                read
                if isinstance(read, FetchFailure)
                else await loader.accept(spec, binding, read, self.check_context)
            )
            if isinstance(accepted, FetchFailure):
                problems.append(ConfigProblem(spec.name, binding.origin, accepted.reason))
            else:
                entries[spec.name] = accepted
        if problems:
            return problems
        self._snapshot = MappingProxyType(entries)
        self._refresher.scheduled(entries.values())
        for name, entry in entries.items():
            self.emit(
                SECRET_LOADED,
                setting=name,
                source=entry.source,
                origin=entry.origin,
                version=entry.version,
            )
        return problems

    async def _generated(self, spec: SecretSpec[Any]) -> SecretEntry | ConfigProblem:
        """A missing required secret: generated where its declaration allows it (development;
        also test for `required="production"`), a problem everywhere else."""
        if not spec.generated_in(self.config.app_env) or spec.generate is None:
            searched = (
                f"searched env {spec.name}, {spec.file_variable} and "
                f"SECRETS_DIR={self.config.secrets_dir}"
            )
            return ConfigProblem(spec.name, searched, missing_message(spec))
        value = spec.generate()
        binding = generated_binding(spec.name, value)
        self.bindings = {**self.bindings, spec.name: binding}
        logger.warning(
            "%s is not set: generated a random %s value. It will not survive a restart "
            "or be shared between workers; run `python -m app secrets init`.",
            spec.name,
            self.config.app_env,
        )
        accepted = await loader.accept(
            spec, binding, Fetched(value, "generated"), self.check_context
        )
        if isinstance(accepted, FetchFailure):  # a generator its own declaration refuses: a bug
            return ConfigProblem(spec.name, binding.origin, accepted.reason)
        return accepted

    # ---- reading ------------------------------------------------------------------------

    def get(self, name: str) -> SecretStr | None:
        """The current raw value of `name`, or None when it is not configured."""
        entry = self._snapshot.get(name)
        return entry.value if entry is not None else None

    def parsed(self, spec: SecretSpec[T]) -> T | None:
        """The current value of `spec` as its declaration parsed it, or None when not set."""
        entry = self._snapshot.get(spec.name)
        return cast(T, entry.parsed) if entry is not None else None

    def entry(self, name: str) -> SecretEntry | None:
        return self._snapshot.get(name)

    def snapshot(self) -> Mapping[str, SecretEntry]:
        """All current entries at one instant (immutable)."""
        return self._snapshot

    def values(self) -> list[str]:
        """Every loaded secret value, for the log redaction filter (which asks for every log
        line): the same list until the snapshot changes. Do not modify it."""
        snapshot = self._snapshot
        cached = self._values_cache
        if cached is None or cached[0] is not snapshot:
            values = [e.value.get_secret_value() for e in snapshot.values()]
            cached = self._values_cache = (snapshot, values)
        return cached[1]

    def registry_spec(self, name: str) -> SecretSpec[Any]:
        spec = self.registry.get(name)
        if spec is None:  # bindings are made from the registry: this cannot happen
            raise KeyError(name)
        return spec

    @property
    def fetch_timeout(self) -> float:
        return self.config.secrets_fetch_timeout_seconds

    @property
    def check_context(self) -> CheckContext:
        return CheckContext(production=self.config.is_production)

    # ---- following changes --------------------------------------------------------------

    def on_change(self, listener: ChangeListener) -> Callable[[], None]:
        """Call `listener(changed names)` after each rotation; returns the undo."""
        self._listeners.append(listener)
        return lambda: _discard(self._listeners, listener)

    def add_observer(self, observer: RefreshObserver) -> Callable[[], None]:
        """Report each refresh's outcome to `observer`; returns the undo."""
        self._observers.append(observer)
        return lambda: _discard(self._observers, observer)

    def notify(self, event: str, binding: Binding) -> None:
        for observer in list(self._observers):
            try:
                getattr(observer, event)(binding.setting, binding.source)
            except Exception:
                logger.exception("secret refresh observer failed on %s", event)

    def emit(self, event: str, **fields: Any) -> None:
        if self._events is not None:
            try:
                self._events(event, **fields)
            except Exception:
                logger.exception("secret event sink failed on %s", event)

    def publish(
        self, updated: Mapping[str, SecretEntry], renewed: Mapping[str, SecretEntry]
    ) -> frozenset[str]:
        """Swap new entries in as one snapshot; tell the listeners what changed."""
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

    # ---- refreshing ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the background refresh loop (idempotent)."""
        self._refresher.start()

    async def refresh(self, names: Iterable[str] | None = None) -> frozenset[str]:
        """Re-read `names` (default: every non-static secret) now; return what changed."""
        return await self._refresher.refresh(names)

    async def stop(self) -> None:
        """Stop the refresh loop; the last values stay readable."""
        await self._refresher.stop()

    async def aclose(self) -> None:
        await self._refresher.stop()
        for provider in self.providers.values():
            with contextlib.suppress(Exception):
                await provider.aclose()

    def __repr__(self) -> str:
        return f"SecretStore({', '.join(self._snapshot)})"


def missing_message(spec: SecretSpec[Any]) -> str:
    required = "is required in production" if spec.required == "production" else "is required"
    return (
        f"{required} but not set; set {spec.name}, {spec.file_variable}, or put a file named "
        f"{spec.file_name} in SECRETS_DIR (`python -m app secrets init` makes dev files)"
    )


def _discard(items: list[Any], item: Any) -> None:
    with contextlib.suppress(ValueError):
        items.remove(item)
