"""The current request, as seen by code that has no `Request` at hand (log formatters, audit).

The request middleware sets a `RequestContext` for the duration of each HTTP request; anything
running in that request (route, dependency, service, log call) can read it. Background work (the
secret refresher) runs outside any request and sees `None`.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from app.secrets.redaction import redact

#: A client-supplied X-Request-ID is kept only if it is this shape: no spaces, quotes, newlines
#: or control characters can reach a log line or a response header through it.
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")

#: Called for every audit event emitted inside the request (the app's metrics use it).
AuditListener = Callable[[str, Mapping[str, Any]], None]


@dataclass(frozen=True)
class RequestContext:
    request_id: str
    client: str | None = None
    audit_listener: AuditListener | None = None


_current: ContextVar[RequestContext | None] = ContextVar("request_context", default=None)


def current_request() -> RequestContext | None:
    return _current.get()


def current_request_id() -> str | None:
    context = _current.get()
    return context.request_id if context is not None else None


_id_prefix: tuple[int, str, Iterator[int]] = (-1, "", itertools.count())


def new_request_id() -> str:
    """32 hex digits, unique without a syscall per request: a random 64-bit prefix drawn once
    per process (again after a fork) and a counter. An id only correlates lines; it is not a
    secret, so it need not be unpredictable, only unique across replicas and workers."""
    global _id_prefix
    pid, prefix, counter = _id_prefix
    if pid != os.getpid():
        pid, prefix, counter = _id_prefix = (os.getpid(), os.urandom(8).hex(), itertools.count())
    return f"{prefix}{next(counter) & 0xFFFFFFFFFFFFFFFF:016x}"


def accept_request_id(header: str | None) -> str:
    """The caller's id when it is a safe token that holds no secret value (it is written on
    every log line of the request), else a fresh one."""
    if header is not None and SAFE_REQUEST_ID.fullmatch(header) and redact(header) == header:
        return header
    return new_request_id()


class request_context:
    """`with request_context(context):` makes `context` the current request's. A class, not a
    generator-based context manager: it runs on every request, and a generator costs more."""

    __slots__ = ("_context", "_token")

    def __init__(self, context: RequestContext) -> None:
        self._context = context

    def __enter__(self) -> RequestContext:
        self._token = _current.set(self._context)
        return self._context

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._token)
