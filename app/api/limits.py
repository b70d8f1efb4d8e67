"""Request size limits: the body limit is enforced while streaming so a missing or lying
Content-Length cannot get a large body buffered; the header limit exists because uvicorn's
httptools parser accepts headers of any size (h11 stops at 16 KiB), and a megabyte header should
be a 431 on either."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised from `receive`; an HTTPException so FastAPI's body parsing re-raises it as is."""

    def __init__(self) -> None:
        super().__init__(status_code=413, detail="Request body too large")


#: Total size of the request header fields (names + values). Browsers and proxies stay well under
#: 8 KiB; a bearer token is about 1 KiB.
MAX_HEADER_BYTES = 16 * 1024


class BodySizeLimitMiddleware:
    def __init__(
        self, app: ASGIApp, max_body_bytes: int, max_header_bytes: int = MAX_HEADER_BYTES
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        size, lengths = 0, []
        may_have_body = scope.get("http_version") not in ("1.1", "1.0")
        for name, value in scope.get("headers", ()):
            size += len(name) + len(value)
            if name == b"content-length":
                lengths.append(value)
            elif name == b"transfer-encoding":
                may_have_body = True
        if size > self.max_header_bytes:
            await _reply(send, 431, "Request header fields too large")
            return
        for value in lengths:
            may_have_body = True
            try:
                declared = int(value)
            except ValueError:
                await _reply(send, 400, "Invalid Content-Length")
                return
            if declared > self.max_body_bytes:
                await _reply(send, 413, "Request body too large")
                return
        if not may_have_body:
            # HTTP/1.x: without Content-Length or Transfer-Encoding a request has no body
            # (RFC 9112, 6.3), so there is nothing to count (most GETs). HTTP/2 bodies need
            # neither header: they are always counted.
            await self.app(scope, receive, send)
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await _reply(send, 413, "Request body too large")


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
