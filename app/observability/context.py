"""The current request, as seen by code that has no `Request` at hand (log formatters, audit).

The request middleware sets a `RequestContext` for the duration of each HTTP request; anything
running in that request (route, dependency, service, log call) can read it. Background work (the
secret refresher) runs outside any request and sees `None`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

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


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept_request_id(header: str | None) -> str:
    """The caller's id when it is a safe token, else a fresh one."""
    if header is not None and SAFE_REQUEST_ID.fullmatch(header):
        return header
    return new_request_id()


@contextmanager
def request_context(context: RequestContext) -> Iterator[RequestContext]:
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
