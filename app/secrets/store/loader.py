"""Reading secrets through their bindings and accepting them: fetch with a timeout, read a set
of files as one consistent state, then parse and check a NEW value by its declaration."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import SecretStr

from app.secrets.bindings import Binding
from app.secrets.errors import SecretFetchError
from app.secrets.provider import Fetched
from app.secrets.providers.file import Signature
from app.secrets.references import MissingExtraError
from app.secrets.spec import CheckContext, SecretSpec
from app.secrets.store.entries import FetchFailure, SecretEntry

#: How many times a batch of file reads is retried when the files change under it.
CONSISTENT_READ_ATTEMPTS = 5

Read = Fetched | FetchFailure


def signature(binding: Binding | None) -> Signature:
    return binding.signature() if binding is not None and binding.signature else None


async def fetch(binding: Binding, limit: float) -> Read:
    """The binding's current raw value, or why not (one line, never the value)."""
    try:
        return await asyncio.wait_for(binding.fetch(), limit)
    except TimeoutError:
        reason = f"timed out after {limit:g}s reading {binding.origin}"
    except SecretFetchError as exc:
        reason = f"{exc.kind}: {exc}" if exc.kind != "error" else str(exc)
    except Exception as exc:  # an SDK error: its type, not its text, which may echo data
        reason = f"cannot be read ({type(exc).__name__})"
    return FetchFailure(binding.setting, binding.origin, reason)


async def accept(
    spec: SecretSpec[Any], binding: Binding, fetched: Fetched, context: CheckContext
) -> SecretEntry | FetchFailure:
    """An entry holding the value parsed by its declaration, or the problems with it (empty,
    malformed, weak). Parsing runs in a thread: a declaration may do real work (loading RSA
    keys, a KMS unwrap), and it runs once per NEW value, never per request."""
    raw = fetched.value
    if not raw.strip():
        return FetchFailure(spec.name, binding.origin, "is empty")
    try:
        parsed = await asyncio.to_thread(spec.parse, raw)
    except ValueError as exc:
        return FetchFailure(spec.name, binding.origin, str(exc))
    except SecretFetchError as exc:  # a parser that reaches a KMS (DATA_KEYS' envelope form)
        reason = f"{exc.kind}: {exc}" if exc.kind != "error" else str(exc)
        return FetchFailure(spec.name, binding.origin, reason)
    except MissingExtraError as exc:
        return FetchFailure(spec.name, binding.origin, str(exc))
    problems = list(spec.check(parsed, context))
    if problems:
        return FetchFailure(spec.name, binding.origin, "; ".join(problems))
    return SecretEntry(
        spec.name,
        SecretStr(raw),
        parsed,
        binding.source,
        binding.origin,
        fetched.version,
        time.time(),
        fetched.ttl,
    )


async def fetch_consistent(
    bindings: Mapping[str, Binding], names: Sequence[str], limit: float
) -> dict[str, Read]:
    """Fetch `names` so that file-backed values all come from ONE state of the files.

    Kubernetes swaps every file of a mount at once (one `..data` rename), but reading two files
    is not atomic: a swap between the reads would pair an old value with a new one. So the file
    signatures are taken before and after the reads (a seqlock); if any moved, the files are read
    again (remote backends are not re-asked).
    """

    async def read(targets: Sequence[str]) -> dict[str, Read]:
        results = await asyncio.gather(*(fetch(bindings[n], limit) for n in targets))
        return dict(zip(targets, results, strict=True))

    files = [n for n in names if bindings[n].signature is not None]
    before = [signature(bindings[n]) for n in files]
    results = await read(names)
    for _attempt in range(CONSISTENT_READ_ATTEMPTS - 1):
        after = [signature(bindings[n]) for n in files]
        if after == before:
            break
        before = after
        results.update(await read(files))
    return results
