"""Log redaction: no loaded secret value, and no credential header, ever reaches a log sink.

`SecretRedactionFilter` sits on the root logger's handlers (see `app.logs.configure_logging`), so
it sees every record any logger propagates. At filter time it asks the registered secret stores
for their CURRENT values (they are pulled, never copied, so a rotated secret is covered from the
moment it is loaded) and replaces each one, and its URL-encoded and base64 forms, with
`[REDACTED]` in the formatted message, the exception text, the stack text and every `extra`
string. `Authorization` header values, Bearer tokens, JWTs, passwords inside URLs (`user:pass@`)
and credential-like query parameters (`?password=`, `&access_token=`, `api_key=`, ...) are masked
too: they are credentials even though they are not configured secrets.

The filter rewrites the record in place (`msg` becomes the redacted text, `args` is cleared,
`exc_text` holds the redacted traceback and `exc_info` is dropped), so every handler after it and
every formatter (plain or JSON) only ever sees redacted text.

Cost: this runs for every record on the logging thread, so the secret values are compiled into
ONE regex (a trie of every variant), rebuilt only when the set of values changes; the credential
patterns run only on strings that contain their keyword; and a record already rewritten under the
current values is not rewritten again by the next handler's filter.
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
#: `key=value` where the key names a credential (`password`, `db_pass`, `access_token`,
#: a client secret, an API key, ...), at the start of a query, after `&`/`;`, or after a space
#: (a logged form body); the value runs to the next parameter, fragment, space or quote.
_QUERY_CREDENTIAL = re.compile(
    r"""(?ix)
    ((?<![^?&;\s])                       # start of text, or after ? & ; or whitespace
     [\w.\-\[\]]*?                       # any prefix: db_, x-, client_, user[...
     (?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|apikey|access[_-]?key
        |private[_-]?key|signature|sig|auth|credentials?)
     \]?=)
    ([^&;#\s"'<>]+)
    """
)


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


def _trie_pattern(words: Iterable[str]) -> str:
    """One regex matching any of `words`, longest first, factored as a trie: at each position
    the engine follows one branch per character instead of trying every word in turn."""
    root: dict[str, dict] = {}  # type: ignore[type-arg]
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # a word ends here

    def build(node: dict[str, dict]) -> str:  # type: ignore[type-arg]
        branches: list[str] = []
        for char in sorted(k for k in node if k):
            chain, child = char, node[char]
            while len(child) == 1 and "" not in child:  # collapse single-child runs
                ((next_char, child),) = child.items()
                chain += next_char
            branches.append(re.escape(chain) + build(child))
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body  # greedy: the longer word wins

    return build(root)


class _Mark:
    """Put on a record rewritten under one matcher. Compared by identity, so no `extra` field a
    caller passes can fake it; its repr and pickle carry nothing but the generation."""

    __slots__ = ("generation",)

    def __init__(self, generation: int) -> None:
        self.generation = generation

    def __repr__(self) -> str:
        return f"<redacted under secret values #{self.generation}>"

    def __reduce__(self) -> tuple[type[_Mark], tuple[int]]:
        return (_Mark, (self.generation,))


class _Matcher:
    """The compiled form of one set of secret values."""

    __slots__ = ("clean", "generation", "mark", "pattern", "values")

    def __init__(self, values: list[str], generation: int) -> None:
        self.values = values
        self.generation = generation
        self.mark = _Mark(generation)
        #: Short strings already found to hold nothing to mask (methods, routes, addresses, paths
        #: repeat on every access line); dropped with the matcher when the values change.
        self.clean: set[str] = set()
        found = variants(values)
        self.pattern = re.compile(_trie_pattern(found)) if found else None

    def __repr__(self) -> str:  # never the pattern: it spells every secret
        return f"<secret matcher #{self.generation}>"


_matcher = _Matcher([], 0)
_matcher_lock = threading.Lock()


def _matcher_for(values: list[str]) -> _Matcher:
    """The matcher for `values`, compiled again only when they differ from the last ones (the
    store hands back the same string objects until a rotation, so the comparison is cheap)."""
    global _matcher
    current = _matcher
    if values == current.values:
        return current
    with _matcher_lock:
        if values != _matcher.values:
            _matcher = _Matcher(list(values), _matcher.generation + 1)
        return _matcher


def _mask_credentials(text: str) -> str:
    """Credential shapes, each regex run only when its keyword is present."""
    lowered = text.lower()
    if "authorization" in lowered:
        text = _HEADER.sub(lambda m: m.group(1) + REDACTED, text)
    if "bearer" in lowered or "basic" in lowered:
        text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}{m.group(3)}", text)
    if "=" in text:
        text = _QUERY_CREDENTIAL.sub(lambda m: m.group(1) + REDACTED, text)
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    return text


_CLEAN_MAX_LENGTH = 200
_CLEAN_MAX_ENTRIES = 4096


def _redact(text: str, matcher: _Matcher) -> str:
    clean = matcher.clean
    if not text or text in clean:
        return text
    masked = text if matcher.pattern is None else matcher.pattern.sub(REDACTED, text)
    masked = _mask_credentials(masked)
    if masked == text and len(text) <= _CLEAN_MAX_LENGTH:
        if len(clean) >= _CLEAN_MAX_ENTRIES:  # bounded, whatever paths clients send
            clean.clear()
        clean.add(text)
    return masked


def redact(text: str, values: list[str] | None = None) -> str:
    """`text` with every secret value (current ones by default) and credential masked."""
    if not text:
        return text
    return _redact(text, _matcher_for(current_secret_values() if values is None else values))


def redactor() -> Callable[[str], str]:
    """`redact` bound to the current values: for several strings of one line, the values are
    looked up once."""
    matcher = _matcher_for(current_secret_values())
    return lambda text: _redact(text, matcher) if text else text


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
        matcher = _matcher_for(current_secret_values())
        # Several handlers each carry a filter: the first one rewrites, the others see the mark.
        if record.__dict__.get(_MARK) is matcher.mark:
            return
        record.msg = _redact(record.getMessage(), matcher)
        record.args = None
        if record.exc_info:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_info = None
        if record.exc_text:
            record.exc_text = _redact(record.exc_text, matcher)
        if record.stack_info:
            record.stack_info = _redact(record.stack_info, matcher)
        attributes = record.__dict__
        if isinstance(attributes.get("message"), str):
            record.message = _redact(record.message, matcher)
        for key in attributes.keys() - _STANDARD_ATTRIBUTES:  # `extra={...}` fields
            attributes[key] = _redact_value(attributes[key], matcher)
        attributes[_MARK] = matcher.mark


#: Attributes every LogRecord has; anything else came from `extra=` and is written by formatters.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
}
#: Set on a rewritten record: the `_Mark` of the matcher it was rewritten with.
_MARK = "_redacted_under"


def _redact_value(value: object, matcher: _Matcher) -> object:
    if isinstance(value, str):
        return _redact(value, matcher)
    if isinstance(value, int | float | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {k: _redact_value(v, matcher) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v, matcher) for v in value)
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
