"""Response headers every answer carries (added at the app's edge, by the request middleware's
response wrapper, so errors get them too): `X-Content-Type-Options: nosniff` always, and
`Strict-Transport-Security` when the request came over HTTPS (directly, or per
`X-Forwarded-Proto` from a trusted proxy: the scheme the proxy middleware settled on). A
response that sets one of them itself keeps its own."""

from __future__ import annotations

from typing import Any, cast

from starlette.types import ASGIApp, Scope
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

NOSNIFF = (b"x-content-type-options", b"nosniff")
#: Two years, subdomains included: the usual preload-grade policy.
HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")


_PLAIN = (NOSNIFF,)
_SECURE = (NOSNIFF, HSTS)


def security_headers(scope: Scope) -> tuple[tuple[bytes, bytes], ...]:
    """The security headers for a response to `scope`."""
    return _SECURE if scope.get("scheme") == "https" else _PLAIN


def behind_trusted_proxies(app: ASGIApp, trusted: str) -> ASGIApp:
    """uvicorn's proxy-headers middleware, in the app itself (so every server and the in-process
    test client apply the same rule): `X-Forwarded-For` / `X-Forwarded-Proto` are believed only
    from the peers in `trusted` (`FORWARDED_ALLOW_IPS`); from anyone else they are ignored. The
    `serve` command turns uvicorn's own copy off so the rule is applied exactly once."""
    # uvicorn types its ASGI apps with its own (stricter) protocol types; same interface.
    wrapped = ProxyHeadersMiddleware(cast(Any, app), trusted_hosts=trusted)
    return cast(ASGIApp, wrapped)
