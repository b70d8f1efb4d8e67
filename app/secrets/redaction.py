"""Log redaction: no loaded secret value, and no credential header, ever reaches a log sink.

`SecretRedactionFilter` sits on the root logger's handlers (see `app.logs.configure_logging`), so
it sees every record any logger propagates. At filter time it asks the registered secret stores
for their CURRENT values (they are pulled, never copied, so a rotated secret is covered from the
moment it is loaded) and replaces each one, and its URL-encoded and base64 forms, with
`[REDACTED]` in the formatted message, the exception text and the stack text. `Authorization`
header values, Bearer tokens, JWTs and passwords inside URLs are masked too: they are credentials
even though they are not configured secrets.

The filter rewrites the record in place (`msg` becomes the redacted text, `args` is cleared,
`exc_text` holds the redacted traceback and `exc_info` is dropped), so every handler after it and
every formatter (plain or JSON) only ever sees redacted text.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"

#: Values shorter than this are not searched for: masking every "ab" would garble logs and such
#: a value is not a secret worth the name (production checks refuse short keys anyway).
MIN_SECRET_LENGTH = 4

#: JSON members that hold secret material inside a composite secret (JWK private parts, the
#: password of DATABASE_CREDENTIALS, tokens of Vault-style documents).
_SECRET_MEMBERS = frozenset(
    {"password", "k", "d", "p", "q", "dp", "dq", "qi", "secret", "token", "client_secret"}
)

_HEADER = re.compile(
    r"""(?ix)
    (\b(?:proxy-)?authorization\b["']?\s*[:=,]\s*["']?)   # the header name and its separator
    ([^"'\r\n]+?)                                         # its value
    (?=["'\r\n]|$)
    """
)
_BEARER = re.compile(r"\b(Bearer|bearer|BEARER|Basic|BASIC)(\s+)[A-Za-z0-9\-._~+/]{8,}=*")
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]*:)([^@/?#\s]+)(@)")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")


class SecretValues(Protocol):
    """Anything that can list its currently loaded secret values (the SecretStore does)."""

    def values(self) -> list[str]: ...


_sources: list[Callable[[], Iterable[str]]] = []
_sources_lock = threading.Lock()


def register_secret_source(
    source: SecretValues | Callable[[], Iterable[str]],
) -> Callable[[], None]:
    """Have every redaction filter mask `source`'s values from now on; returns the undo.

    The app's lifespan registers its SecretStore here and unregisters it on shutdown.
    """
    getter: Callable[[], Iterable[str]] = source if callable(source) else source.values
    with _sources_lock:
        _sources.append(getter)
    install_on_root()  # also covers processes that never called configure_logging

    def unregister() -> None:
        with _sources_lock:
            if getter in _sources:
                _sources.remove(getter)

    return unregister


def current_secret_values() -> list[str]:
    with _sources_lock:
        getters = list(_sources)
    values: list[str] = []
    for getter in getters:
        try:
            values.extend(getter())
        except Exception:  # noqa: S112 - a closed store must never break logging
            continue
    return values


def _fragments(value: str) -> Iterator[str]:
    """The value, each of its lines, and the secret members of a JSON document."""
    yield value
    stripped = value.strip()
    if "\n" in stripped:
        yield from (line.strip() for line in stripped.splitlines())
    if stripped.startswith(("{", "[")):
        try:
            document = json.loads(stripped)
        except ValueError:
            return
        yield from _json_secrets(document)


def _json_secrets(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, child in node.items():
            if isinstance(child, str) and str(key).lower() in _SECRET_MEMBERS:
                yield child
            else:
                yield from _json_secrets(child)
    elif isinstance(node, list):
        for child in node:
            yield from _json_secrets(child)


def _encodings(fragment: str) -> Iterator[str]:
    raw = fragment.encode("utf-8")
    yield fragment
    yield quote(fragment, safe="")
    yield quote_plus(fragment, safe="")
    yield quote(fragment)  # keeps "/", as paths and URLs do
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = encoded.decode("ascii")
        yield text
        yield text.rstrip("=")


def variants(values: Iterable[str]) -> set[str]:
    """Every string whose presence in a log line would disclose one of `values`."""
    found: set[str] = set()
    for value in values:
        for fragment in _fragments(value):
            if len(fragment) < MIN_SECRET_LENGTH:
                continue
            found.update(v for v in _encodings(fragment) if len(v) >= MIN_SECRET_LENGTH)
    return found


class _PatternCache:
    """Compiling the alternation is the costly part; redo it only when the values change."""

    def __init__(self) -> None:
        self._key: frozenset[str] | None = None
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def pattern(self, values: list[str]) -> re.Pattern[str] | None:
        key = frozenset(values)
        with self._lock:
            if key != self._key:
                found = sorted(variants(key), key=len, reverse=True)
                self._pattern = re.compile("|".join(map(re.escape, found))) if found else None
                self._key = key
            return self._pattern


_cache = _PatternCache()


def redact(text: str, values: list[str] | None = None) -> str:
    """`text` with every secret value (current ones by default) and credential masked."""
    if not text:
        return text
    pattern = _cache.pattern(current_secret_values() if values is None else values)
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    text = _HEADER.sub(lambda m: m.group(1) + REDACTED, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}{m.group(3)}", text)
    return _JWT.sub(REDACTED, text)


class SecretRedactionFilter(logging.Filter):
    """Rewrites each record so that nothing after it can see a secret. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            self._redact_record(record)
        except Exception:  # a record that cannot be formatted must not leak raw args instead
            record.msg = f"{REDACTED} (log record could not be redacted)"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True

    @staticmethod
    def _redact_record(record: logging.LogRecord) -> None:
        values = current_secret_values()
        record.msg = redact(record.getMessage(), values)
        record.args = None
        if record.exc_info:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text, values)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, values)
        if isinstance(getattr(record, "message", None), str):
            record.message = redact(record.message, values)
        for key, value in list(vars(record).items()):  # `extra={...}` fields (JSON formatters)
            if key not in _STANDARD_ATTRIBUTES:
                setattr(record, key, _redact_value(value, values))


#: Attributes every LogRecord has; anything else came from `extra=` and is written by formatters.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
}


def _redact_value(value: object, values: list[str]) -> object:
    if isinstance(value, str):
        return redact(value, values)
    if isinstance(value, dict):
        return {k: _redact_value(v, values) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v, values) for v in value)
    return value


def install_redaction(handler: logging.Handler) -> None:
    """Put the redaction filter on `handler` (once)."""
    if not any(isinstance(f, SecretRedactionFilter) for f in handler.filters):
        handler.addFilter(SecretRedactionFilter())


def install_on_root() -> None:
    """Every handler of the root logger redacts (records from all loggers propagate to them), and
    so does `logging.lastResort`, which prints warnings when no handler is configured at all."""
    for handler in logging.getLogger().handlers:
        install_redaction(handler)
    if logging.lastResort is not None:
        install_redaction(logging.lastResort)


__all__ = [
    "REDACTED",
    "SecretRedactionFilter",
    "current_secret_values",
    "install_on_root",
    "install_redaction",
    "redact",
    "register_secret_source",
    "variants",
]
