"""Where each secret comes from: `X`, then `X_FILE`, then a file named `x` in `SECRETS_DIR`.

A `Binding` knows how to fetch the current value and, for files, how to notice a change cheaply.
Bindings are decided once at startup; values are re-fetched through them for the process lifetime.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from app.config import SECRET_SETTINGS, Settings
from app.secrets.errors import ConfigProblem, SecretNotFound
from app.secrets.providers.base import Fetched, SecretProvider
from app.secrets.providers.file import (
    Signature,
    file_signature,
    find_in_secret_dirs,
    read_secret_file,
    scan_secret_dirs,
)
from app.secrets.references import (
    MissingExtraError,
    Reference,
    parse_reference,
    select_json_key,
)

ProviderFor = Callable[[str], SecretProvider]


@dataclass(frozen=True)
class Binding:
    setting: str
    source: str  # env | file | dir | generated | aws-sm | gcp-sm | azure-kv | vault
    origin: str  # where it was read, safe to print: never the value
    fetch: Callable[[], Awaitable[Fetched]] = field(repr=False)
    signature: Callable[[], Signature] | None = field(default=None, repr=False)
    reference: Reference | None = None

    @property
    def is_static(self) -> bool:
        """Literal values from the environment never change while the process runs."""
        return self.source in {"env", "generated"}


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
    settings: Settings, provider_for: ProviderFor
) -> tuple[dict[str, Binding], list[ConfigProblem]]:
    """Decide the source of every configured secret. The problems come back next to the
    bindings that did work, so `config check` can show a full table."""
    problems: list[ConfigProblem] = []
    bindings: dict[str, Binding] = {}
    for name in SECRET_SETTINGS:
        attr = name.lower()
        literal = getattr(settings, attr, None)
        path: Path | None = getattr(settings, f"{attr}_file", None)
        if literal is not None and path is not None:
            problems.append(
                ConfigProblem(
                    name, f"{name} and {name}_FILE", "both are set; set exactly one of them"
                )
            )
            continue
        if literal is not None:
            raw = literal.get_secret_value()
            ref = parse_reference(raw)
            if ref is None:
                bindings[name] = Binding(name, "env", f"env {name}", _constant(raw))
                continue
            origin = f"{name}={ref}"
            if ref.scheme == "file":
                target = Path("/" + ref.path.lstrip("/"))
                bindings[name] = Binding(
                    name, "file", origin, _selecting(_file(target), ref), _probe(target), ref
                )
                continue
            try:
                provider = provider_for(ref.scheme)
            except MissingExtraError as exc:
                problems.append(ConfigProblem(name, origin, str(exc)))
                continue
            except Exception as exc:  # a provider that cannot even be built (bad region, ...)
                problems.append(
                    ConfigProblem(name, origin, f"provider cannot start ({type(exc).__name__})")
                )
                continue
            bindings[name] = Binding(
                name,
                ref.scheme,
                origin,
                _selecting(functools.partial(provider.fetch, ref), ref),
                reference=ref,
            )
        elif path is not None:
            if path == Path():  # `X_FILE=` (empty) parses as "."
                problems.append(ConfigProblem(name, f"{name}_FILE", "is empty; set a file path"))
                continue
            bindings[name] = Binding(name, "file", f"{name}_FILE={path}", _file(path), _probe(path))
        else:
            scan = scan_secret_dirs(attr, settings.secrets_dirs)
            if scan.found is not None:
                bindings[name] = Binding(
                    name,
                    "dir",
                    f"SECRETS_DIR {scan.found}",
                    _file(scan.found, scan.found.parent),
                    _probe(scan.found),
                )
            elif scan.refused is not None:
                problems.append(
                    ConfigProblem(name, f"SECRETS_DIR file {scan.refused}", scan.reason)
                )
    return bindings, problems
