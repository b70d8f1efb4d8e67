"""A real SMTP server for tests (aiosmtpd on 127.0.0.1, in its own thread), and mail helpers.

    with smtp_server() as server:                          # plain SMTP, no AUTH
        settings = make_settings(smtp_url=server.url)
    with smtp_server(tls=tls_files, user="app", password="pw") as server:  # STARTTLS + AUTH
    with smtp_server(tls=tls_files, implicit_tls=True) as server:          # smtps://

Every delivered message is kept in `server.messages` (parsed, with whether TLS was on and who
logged in); every AUTH attempt in `server.logins`. `fail_first=N` answers the first N DATA
commands with a temporary 451, as a greylisting server does.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import ssl
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.cloud.http import self_signed_certificate
from tests.support.server import free_port

#: The link in an account mail: `.../path#token=<token>`.
TOKEN_IN_LINK = re.compile(r"#token=([A-Za-z0-9_\-%.~]+)")


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path

    @classmethod
    def make(cls, directory: Path) -> TlsFiles:
        """A throwaway self-signed certificate for 127.0.0.1 (the client's CA file too)."""
        cert, key = self_signed_certificate(directory)
        return cls(cert, key)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


@dataclass(frozen=True)
class Received:
    message: EmailMessage
    mail_from: str
    recipients: list[str]
    tls: bool
    login: str | None

    @property
    def text(self) -> str:
        body = self.message.get_body(("plain",))
        assert body is not None
        content: str = body.get_content()
        return content

    def token(self) -> str:
        """The single-use token of the mail's link."""
        from urllib.parse import unquote

        found = TOKEN_IN_LINK.search(self.text)
        assert found is not None, "no #token= link in the mail"
        return unquote(found.group(1))


@dataclass
class _Handler:
    fail_first: int
    messages: list[Received] = field(default_factory=list)
    data_commands: int = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.data_commands += 1
        if self.data_commands <= self.fail_first:
            return "451 4.3.0 try again later"
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        login = session.auth_data.login.decode() if session.authenticated else None  # type: ignore[attr-defined]
        self.messages.append(
            Received(
                parsed,
                str(envelope.mail_from),
                [str(r) for r in envelope.rcpt_tos],
                server.transport is not None
                and server.transport.get_extra_info("ssl_object") is not None,
                login,
            )
        )
        return "250 2.0.0 OK"


@dataclass
class Login:
    user: str
    password: str
    accepted: bool


@dataclass
class SmtpTestServer:
    url: str
    handler: _Handler
    logins: list[Login]
    user: str | None
    password: str | None

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def rotate_password(self, password: str) -> None:
        """From now on only `password` is accepted (the old one is refused)."""
        self.password = password

    def wait_for(self, count: int, timeout: float = 10) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            assert time.monotonic() < deadline, f"{len(self.messages)} of {count} mails arrived"
            time.sleep(0.02)
        return list(self.messages)

    async def await_messages(self, count: int, timeout: float = 10) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            assert time.monotonic() < deadline, f"{len(self.messages)} of {count} mails arrived"
            await asyncio.sleep(0.02)
        return list(self.messages)


class _Controller(Controller):
    def factory(self) -> SMTP:
        # The implicit-TLS server turns off aiosmtpd's "AUTH only after STARTTLS" (its socket is
        # TLS from the first byte), which aiosmtpd warns about.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            server: SMTP = super().factory()  # type: ignore[no-untyped-call]
            return server


@contextmanager
def smtp_server(
    *,
    tls: TlsFiles | None = None,
    implicit_tls: bool = False,
    user: str | None = None,
    password: str | None = None,
    fail_first: int = 0,
) -> Iterator[SmtpTestServer]:
    """Run a real SMTP server on 127.0.0.1 until the block ends. With `tls`, STARTTLS is
    offered (and required before AUTH, aiosmtpd's default), or with `implicit_tls` the socket
    is TLS from the start. With `user`, AUTH is required and checked against the CURRENT
    password (`rotate_password`)."""
    handler = _Handler(fail_first)
    logins: list[Login] = []
    port = free_port()
    scheme = "smtps" if implicit_tls else "smtp"
    userinfo = f"{user}@" if user else ""
    server = SmtpTestServer(
        f"{scheme}://{userinfo}127.0.0.1:{port}", handler, logins, user, password
    )
    lock = threading.Lock()

    def authenticator(
        smtp: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        given_user, given_password = auth_data.login.decode(), auth_data.password.decode()
        with lock:
            accepted = given_user == server.user and given_password == server.password
            logins.append(Login(given_user, given_password, accepted))
        return AuthResult(success=accepted, auth_data=auth_data)

    options: dict[str, Any] = {"server_hostname": "mail.test", "hostname": "127.0.0.1"}
    if tls is not None and implicit_tls:
        options["ssl_context"] = tls.server_context()
        # aiosmtpd only counts STARTTLS as TLS for AUTH; this socket is TLS from the start.
        options["auth_require_tls"] = False
    elif tls is not None:
        options["tls_context"] = tls.server_context()
    if user is not None:
        options.update(authenticator=authenticator, auth_required=True)
    controller = _Controller(handler, port=port, **options)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


@contextmanager
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never says a word (no SMTP greeting): the
    `smtp://` URL of a mail server that hangs."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(connection)  # held open, never written to

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"smtp://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        listener.close()
