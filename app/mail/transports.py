"""Where a mail goes: an SMTP server (aiosmtplib), an outbox directory, or nowhere.

Each transport delivers ONE message or raises `DeliveryFailed` with a fixed `reason` (a metric
label) and whether trying again could help. Nothing here logs, and no message built here quotes
an address or a server reply: replies such as `550 <someone@example.com>: unknown user` echo the
recipient, so only the exception type and the SMTP code are kept.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import aiosmtplib

from app.config import SMTP_PASSWORD, SmtpServer
from app.secrets import SecretStore

#: Every `reason` a mail can fail with (metric labels): the transports' and the mailer's own.
FAILURE_REASONS = (
    "timeout", "connection", "tls", "auth", "rejected", "protocol", "insecure", "credentials",
    "outbox", "disabled", "queue_full", "shutdown", "error",
)  # fmt: skip


class DeliveryFailed(Exception):
    """One delivery attempt failed. `str()` holds no address, token or server reply."""

    def __init__(self, reason: str, detail: str, *, retry: bool) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.retry = retry


class Transport(Protocol):
    #: What `config check`, logs and metrics call it: "smtp", "outbox" or "disabled".
    name: str

    async def deliver(self, message: EmailMessage, mail_id: str) -> None: ...


class SmtpTransport:
    """One connection per message: connect (implicit TLS for `smtps://`, STARTTLS whenever the
    server offers it for `smtp://`), AUTH when SMTP_URL names a user, send, QUIT.

    The password is read from the store at every connection, so a rotation applies to the next
    mail without a restart. It is only ever sent over TLS: a server that offers no STARTTLS gets
    no credentials (the attempt fails with reason `insecure`), so neither a misconfigured relay
    nor an attacker stripping STARTTLS can read it. `timeout` bounds the connection and each SMTP
    command; the whole attempt is bounded to three times that.
    """

    name = "smtp"

    def __init__(
        self,
        server: SmtpServer,
        store: SecretStore,
        *,
        timeout: float,
        ca_file: Path | None = None,
        local_hostname: str | None = None,
    ) -> None:
        self.server = server
        self.store = store
        self.timeout = timeout
        self.ca_file = ca_file
        # EHLO name; aiosmtplib's default is a blocking getfqdn() (a DNS lookup) per connection.
        self.local_hostname = local_hostname or "localhost"

    async def deliver(self, message: EmailMessage, mail_id: str) -> None:
        password: str | None = None
        if self.server.username is not None:
            password = self.store.parsed(SMTP_PASSWORD)
            if password is None:
                raise DeliveryFailed("credentials", "SMTP_PASSWORD is not set", retry=True)
        client = aiosmtplib.SMTP(
            hostname=self.server.host,
            port=self.server.port,
            use_tls=self.server.implicit_tls,
            start_tls=False if self.server.implicit_tls else None,  # None: when offered
            validate_certs=True,
            cert_bundle=str(self.ca_file) if self.ca_file is not None else None,
            timeout=self.timeout,
            local_hostname=self.local_hostname,
        )
        try:
            async with asyncio.timeout(self.timeout * 3):
                await client.connect()
                if password is not None and self.server.username is not None:
                    if client.get_transport_info("sslcontext") is None:
                        detail = "the server offers no TLS: credentials are never sent in clear"
                        raise DeliveryFailed("insecure", detail, retry=False)
                    await client.login(self.server.username, password)
                await client.send_message(message)
                await client.quit()
        except DeliveryFailed:
            raise
        except Exception as exc:
            raise classify(exc) from None
        finally:
            client.close()


def classify(exc: BaseException) -> DeliveryFailed:
    """A reason and a retry decision for an SMTP client error, without its message."""
    kind = type(exc).__name__
    if isinstance(exc.__cause__, ssl.SSLError):  # aiosmtplib wraps it in SMTPConnectError
        exc = exc.__cause__
    if isinstance(exc, TimeoutError):  # asyncio's and aiosmtplib's timeouts are TimeoutErrors
        return DeliveryFailed("timeout", kind, retry=True)
    if isinstance(exc, ssl.SSLError):  # a certificate that does not verify stays so for a while
        return DeliveryFailed("tls", type(exc).__name__, retry=False)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        # Retried: the password may be rotating (the store picks the new one up in seconds).
        return DeliveryFailed("auth", f"{kind} {exc.code}", retry=True)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = sorted({refused.code for refused in exc.recipients})
        temporary = all(400 <= code < 500 for code in codes)
        return DeliveryFailed("rejected", f"{kind} {codes}", retry=temporary)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        # 4xx: try again later (greylisting, a full queue); 5xx: it will not change.
        return DeliveryFailed("rejected", f"{kind} {exc.code}", retry=400 <= exc.code < 500)
    if isinstance(exc, ConnectionError | OSError):
        return DeliveryFailed("connection", kind, retry=True)
    return DeliveryFailed("protocol", kind, retry=False)


class OutboxTransport:
    """Development and tests without SMTP: each message becomes `<UTC time>-<id>.eml` in a
    directory (created 0700), readable by its owner only (0600): the files hold live tokens."""

    name = "outbox"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def deliver(self, message: EmailMessage, mail_id: str) -> None:
        try:
            await asyncio.to_thread(self._write, message.as_bytes(), mail_id)
        except OSError as exc:
            raise DeliveryFailed("outbox", type(exc).__name__, retry=True) from None

    def _write(self, data: bytes, mail_id: str) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.directory / f"{stamp}-{mail_id}.eml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)  # whatever the umask
            handle.write(data)


class DisabledTransport:
    """Outside production with neither SMTP_URL nor MAIL_OUTBOX_DIR: every mail is dropped
    (and logged and counted as a failure by the mailer, so nobody waits for it in silence)."""

    name = "disabled"

    async def deliver(self, message: EmailMessage, mail_id: str) -> None:
        raise DeliveryFailed("disabled", "neither SMTP_URL nor MAIL_OUTBOX_DIR is set", retry=False)
