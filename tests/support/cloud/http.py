"""A minimal recording HTTP(S) server for provider fakes: routes are (method, regex) -> handler.

Every request is recorded (method, path, headers, body, start/end time) so tests can assert what
the real SDK sent: an auth header, no secret in the URL, how many calls and how concurrent.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar


class _Server(ThreadingHTTPServer):
    # TLS handshakes happen in the accepting thread; with the default backlog of 5, a burst of
    # concurrent clients overflows it and the kernel drops SYNs (1 s retransmit), which would
    # look like a client that is not concurrent.
    request_queue_size = 128
    daemon_threads = True


@dataclass
class Recorded:
    method: str
    path: str
    headers: Message  # case-insensitive `.get()`
    body: bytes
    started: float
    ended: float = 0.0


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[re.Match[str], Recorded], Reply]
_AnyServer = TypeVar("_AnyServer", bound=socketserver.BaseServer)


class FakeServer:
    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.requests: list[Recorded] = []
        self.latency = 0.0  # seconds added to every request
        self.down = False  # True: close connections without answering (an outage)
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.scheme = "http"

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append((method, re.compile(pattern), handler))
            return handler

        return register

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"{self.scheme}://127.0.0.1:{self._server.server_address[1]}"

    def calls(self, method: str | None = None, path_regex: str = "") -> list[Recorded]:
        with self.lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and re.search(path_regex, r.path)
            ]

    def max_in_flight(self, requests: list[Recorded]) -> int:
        events = sorted([(r.started, 1) for r in requests] + [(r.ended, -1) for r in requests])
        peak = level = 0
        for _, delta in events:
            level += delta
            peak = max(peak, level)
        return peak

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        record = Recorded(handler.command, handler.path, handler.headers, body, time.monotonic())
        with self.lock:
            self.requests.append(record)
        if self.down:
            handler.close_connection = True
            record.ended = time.monotonic()
            return
        if self.latency:
            time.sleep(self.latency)
        path = handler.path.split("?", 1)[0]
        reply = Reply(404, {"error": "no route"})
        for method, pattern, route in self.routes:
            match = pattern.fullmatch(path)
            if method == handler.command and match:
                reply = route(match, record)
                break
        payload = (
            b""
            if reply.body is None
            else (reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode())
        )
        # Stamped BEFORE the reply is written: once the client has it, the test may already be
        # reading this record (an unset end time made overlapping requests look sequential).
        record.ended = time.monotonic()
        handler.send_response(reply.status)
        headers = {"Content-Type": "application/json", **reply.headers}
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    @contextmanager
    def running(self, tls_dir: Path | None = None) -> Iterator[FakeServer]:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                fake._dispatch(self)

            do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                return None

        server = _Server(("127.0.0.1", 0), _Handler)
        if tls_dir is not None:
            cert, key = self_signed_certificate(tls_dir)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            server.socket = context.wrap_socket(server.socket, server_side=True)
            self.scheme = "https"
        self._server = server
        with serving(server):
            yield self


@contextmanager
def serving(server: _AnyServer) -> Iterator[_AnyServer]:
    """Run `server.serve_forever()` on a daemon thread; shut it down and close it on exit."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1/localhost, generated now (never committed)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "fake-tls.crt", directory / "fake-tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
