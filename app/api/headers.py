"""Response headers every answer carries (pure ASGI, at the app's edge so errors get them too):
`X-Content-Type-Options: nosniff` always, and `Strict-Transport-Security` when the request came
over HTTPS (directly, or per `X-Forwarded-Proto` from a trusted proxy: the scheme the proxy
middleware settled on)."""

from __future__ import annotations

from typing import Any, cast

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

NOSNIFF = (b"x-content-type-options", b"nosniff")
#: Two years, subdomains included: the usual preload-grade policy.
HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        added = [NOSNIFF, HSTS] if scope.get("scheme") == "https" else [NOSNIFF]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                extra = [header for header in added if header[0] not in present]
                if extra:
                    message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def behind_trusted_proxies(app: ASGIApp, trusted: str) -> ASGIApp:
    """uvicorn's proxy-headers middleware, in the app itself (so every server and the in-process
    test client apply the same rule): `X-Forwarded-For` / `X-Forwarded-Proto` are believed only
    from the peers in `trusted` (`FORWARDED_ALLOW_IPS`); from anyone else they are ignored. The
    `serve` command turns uvicorn's own copy off so the rule is applied exactly once."""
    # uvicorn types its ASGI apps with its own (stricter) protocol types; same interface.
    wrapped = ProxyHeadersMiddleware(cast(Any, app), trusted_hosts=trusted)
    return cast(ASGIApp, wrapped)
