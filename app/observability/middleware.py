"""One pure-ASGI middleware per request: request id, access log line, HTTP metrics.

It wraps the WHOLE app (outside Starlette's error middleware, see `install_outermost`) so that
even a 500 or a 413 carries `X-Request-ID`, is counted, and is logged with its id. Pure ASGI,
not `BaseHTTPMiddleware`: no buffering of bodies, no extra task per request.

The access line holds method, path (never the query string: it may carry tokens), route
template, status, duration and client; no headers, so no `Authorization` or cookie can leak.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.context import (
    AuditListener,
    RequestContext,
    accept_request_id,
    new_request_id,
    request_context,
)

access_logger = logging.getLogger("app.access")

#: Probes and scrapes: logged at DEBUG when they succeed, so they do not drown real traffic.
QUIET_PATHS = frozenset({"/health/live", "/health/ready", "/metrics"})

#: A request no route matched (404/405) is counted under this label, never under its raw path,
#: so scanners cannot blow up the metrics' cardinality.
UNMATCHED_ROUTE = "<unmatched>"

_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

RequestObserver = Callable[[str, str, int, float], None]  # method, route, status, seconds
Header = tuple[bytes, bytes]
#: Headers every response carries unless the app set them (the API's security headers): added
#: here, in the one response wrapper the edge has, rather than by a layer of their own.
DefaultHeaders = Callable[[Scope], Sequence[Header]]
_REQUEST_ID = b"x-request-id"


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            try:
                return str(value.decode("latin-1"))
            except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
                return None
    return None


class RequestObservabilityMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        observe: RequestObserver | None = None,
        audit_listener: AuditListener | None = None,
        default_headers: DefaultHeaders | None = None,
    ) -> None:
        self.app = app
        self.observe = observe
        self.audit_listener = audit_listener
        self.default_headers = default_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = _header(scope, b"x-request-id")
        request_id = new_request_id() if supplied is None else accept_request_id(supplied)
        client = _client(scope)
        status = 500  # if the app dies before answering, that is what the client gets
        started = time.perf_counter()
        header = (_REQUEST_ID, request_id.encode("ascii"))
        defaults = self.default_headers(scope) if self.default_headers is not None else ()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers: list[Header] = []
                present = set()
                for name, value in message.get("headers", ()):
                    lowered = name.lower()
                    if lowered != _REQUEST_ID:  # ours replaces any the app set
                        headers.append((name, value))
                        present.add(lowered)
                headers.extend(h for h in defaults if h[0] not in present)
                headers.append(header)
                message = {**message, "headers": headers}
            await send(message)

        context = RequestContext(request_id, client, self.audit_listener)
        with request_context(context):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                self._record(scope, status, elapsed, client, request_id)

    def _record(
        self, scope: Scope, status: int, elapsed: float, client: str | None, request_id: str
    ) -> None:
        method = str(scope.get("method", "GET")).upper()
        method = method if method in _KNOWN_METHODS else "OTHER"
        route = route_template(scope)
        if self.observe is not None:
            try:
                self.observe(method, route, status, elapsed)
            except Exception:  # a metrics bug must not turn into a failed request
                access_logger.exception("request metrics failed")
        path = str(scope.get("path", ""))
        level = logging.DEBUG if path in QUIET_PATHS and status < 400 else logging.INFO
        if not access_logger.isEnabledFor(level):
            return  # LOG_LEVEL=warning, or a probe at info: build nothing
        duration_ms = round(elapsed * 1000, 2)
        fields = {
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
            "client": client,
        }
        message = "%s %s %s %.2fms" % (method, path, status, duration_ms)  # noqa: UP031
        emit_fields = _plain_json_sink()
        if emit_fields is not None and emit_fields(
            access_logger.name, level, message, fields, request_id
        ):
            return
        # makeRecord + handle is what Logger.log does, minus the stack walk that finds the
        # caller (findCaller): it is this method. Filters, handlers, the record factory apply.
        access_logger.handle(
            access_logger.makeRecord(
                access_logger.name,
                level,
                _CALLER.co_filename,
                _CALLER.co_firstlineno,
                message,
                (),
                None,
                _CALLER.co_name,
                fields,
            )
        )


_CALLER = RequestObservabilityMiddleware._record.__code__


class _FieldsSink(Protocol):
    def __call__(
        self, logger: str, level: int, message: str, fields: dict[str, Any], request_id: str | None
    ) -> bool: ...


def _plain_json_sink() -> _FieldsSink | None:
    """The root handler's `emit_fields` (app/logs.py) when an access record would reach that
    handler alone, unchanged: no handler or filter on the way up from `app.access`, one root
    handler, the default record factory. Anything added (a test's caplog, a team's handler,
    a custom factory) takes the ordinary path, so it sees every record."""
    logger: logging.Logger | None = access_logger
    while logger is not None and logger is not logging.root:
        if logger.handlers or logger.filters or not logger.propagate:
            return None
        logger = logger.parent
    root = logging.root
    if root.filters or len(root.handlers) != 1:
        return None
    if logging.getLogRecordFactory() is not logging.LogRecord:  # the default factory
        return None
    sink: _FieldsSink | None = getattr(root.handlers[0], "emit_fields", None)
    return sink


def install_outermost(app: ASGIApp, wrap: Callable[[ASGIApp], ASGIApp]) -> None:
    """Wrap Starlette's whole middleware stack, error middleware included, with `wrap`.

    `add_middleware` would place us INSIDE `ServerErrorMiddleware`, where an unhandled error's
    500 bypasses us (no request id header, no metric, the error log without the id).
    """
    build = app.build_middleware_stack  # type: ignore[attr-defined]

    def build_wrapped() -> ASGIApp:
        return wrap(build())

    app.build_middleware_stack = build_wrapped  # type: ignore[attr-defined]
