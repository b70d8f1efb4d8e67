"""Where each secret comes from: `X`, then `X_FILE`, then a file named `x` in `SECRETS_DIR`.

A `Binding` knows how to fetch the current value and, for files, how to notice a change cheaply.
Bindings are decided once at startup; values are re-fetched through them for the process lifetime.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from app.secrets.documents import select_json_key
from app.secrets.errors import ConfigProblem, SecretNotFound
from app.secrets.provider import Fetched, Reference, SecretProvider
from app.secrets.providers.file import (
    Signature,
    file_signature,
    find_in_secret_dirs,
    read_secret_file,
    scan_secret_dirs,
)
from app.secrets.references import MissingExtraError, parse_reference
from app.secrets.spec import SecretRegistry, SecretsConfig, SecretSpec

ProviderFor = Callable[[str], SecretProvider]


@dataclass(frozen=True)
class Binding:
    setting: str
    source: str  # env | file | dir | generated | aws-sm | gcp-sm | azure-kv | vault
    origin: str  # where it was read, safe to print: never the value
    fetch: Callable[[], Awaitable[Fetched]] = field(repr=False)
    signature: Callable[[], Signature] | None = field(default=None, repr=False)
    reference: Reference | None = None

    hot_reload: bool = True

    @property
    def is_static(self) -> bool:
        """Literal values from the environment never change while the process runs, and a
        secret declared without hot reload is read once."""
        return not self.hot_reload or self.source in {"env", "generated"}


def _constant(value: str, version: str | None = None) -> Callable[[], Awaitable[Fetched]]:
    fetched = Fetched(value, version)

    async def fetch() -> Fetched:
        return fetched

    return fetch


def _file(path: Path, within: Path | None = None) -> Callable[[], Awaitable[Fetched]]:
    def read() -> Fetched:  # path resolution and the read both touch the disk: off the loop
        if within is not None and find_in_secret_dirs(path.name, [within]) is None:
            # The link now points outside the mounted directory (or the file is gone).
            raise SecretNotFound(f"{path} is missing or leaves {within}")
        return read_secret_file(path)

    async def fetch() -> Fetched:
        return await asyncio.to_thread(read)

    return fetch


def _selecting(
    read: Callable[[], Awaitable[Fetched]], ref: Reference
) -> Callable[[], Awaitable[Fetched]]:
    """`read`, then the reference's `#json-key` applied to what it returned."""

    async def fetch() -> Fetched:
        fetched = await read()
        return Fetched(select_json_key(fetched.value, ref), fetched.version, fetched.ttl)

    return fetch


def _probe(path: Path) -> Callable[[], Signature]:
    return lambda: file_signature(path)


def generated_binding(setting: str, value: str) -> Binding:
    return Binding(
        setting,
        "generated",
        "generated at startup (development only)",
        _constant(value, "generated"),
    )


def bind_secrets(
    config: SecretsConfig, registry: SecretRegistry, provider_for: ProviderFor
) -> tuple[dict[str, Binding], list[ConfigProblem]]:
    """Decide the source of every declared secret that is configured. The problems come back
    next to the bindings that did work, so `config check` can show a full table."""
    problems: list[ConfigProblem] = []
    bindings: dict[str, Binding] = {}
    for spec in registry:
        try:
            binding = _bind(config, spec, provider_for)
        except _Refused as refused:
            problems.append(refused.problem)
            continue
        if binding is not None:
            bindings[spec.name] = dataclasses.replace(binding, hot_reload=spec.hot_reload)
    return bindings, problems


class _Refused(Exception):
    def __init__(self, setting: str, origin: str, message: str) -> None:
        self.problem = ConfigProblem(setting, origin, message)


def _bind(
    config: SecretsConfig, spec: SecretSpec[object], provider_for: ProviderFor
) -> Binding | None:
    name = spec.name
    given = config.secret_input(name)
    if given.value is not None and given.file is not None:
        raise _Refused(
            name, f"{name} and {spec.file_variable}", "both are set; set exactly one of them"
        )
    if given.value is not None:
        raw = given.value.get_secret_value()
        ref = parse_reference(raw)
        if ref is None:
            return Binding(name, "env", f"env {name}", _constant(raw))
        origin = f"{name}={ref}"
        if ref.scheme == "file":
            target = Path("/" + ref.path.lstrip("/"))
            return Binding(
                name, "file", origin, _selecting(_file(target), ref), _probe(target), ref
            )
        try:
            provider = provider_for(ref.scheme)
        except MissingExtraError as exc:
            raise _Refused(name, origin, str(exc)) from None
        except Exception as exc:  # a provider that cannot even be built (bad region, ...)
            raise _Refused(name, origin, f"provider cannot start ({type(exc).__name__})") from None
        return Binding(
            name,
            ref.scheme,
            origin,
            _selecting(functools.partial(provider.fetch, ref), ref),
            reference=ref,
        )
    if given.file is not None:
        path = given.file
        if path == Path():  # `X_FILE=` (empty) parses as "."
            raise _Refused(name, spec.file_variable, "is empty; set a file path")
        return Binding(name, "file", f"{spec.file_variable}={path}", _file(path), _probe(path))
    scan = scan_secret_dirs(spec.file_name, config.secrets_dirs)
    if scan.found is not None:
        return Binding(
            name,
            "dir",
            f"SECRETS_DIR {scan.found}",
            _file(scan.found, scan.found.parent),
            _probe(scan.found),
        )
    if scan.refused is not None:
        raise _Refused(name, f"SECRETS_DIR file {scan.refused}", scan.reason)
    return None
