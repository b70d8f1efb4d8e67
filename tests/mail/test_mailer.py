"""The mailer against a REAL SMTP server (aiosmtpd on 127.0.0.1): plain, STARTTLS and implicit
TLS with a certificate made for the test, AUTH with SMTP_PASSWORD from the secret store and its
rotation, retries, a server that never answers, and the outbox directory.

The mailer is built the way the app builds it (`create_mailer(settings, store, metrics)`), with
the app's own `Metrics`, so what is asserted is what `/metrics` would show."""

from __future__ import annotations

import asyncio
import logging
import secrets
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from app.config import SECRETS, SMTP_PASSWORD, Settings
from app.mail import Mail, Mailer, create_mailer, email_verify_mail, password_reset_mail
from app.mail.transports import OutboxTransport
from app.observability.metrics import Metrics
from app.secrets import SecretStore
from tests.support.smtp import TlsFiles, silent_server, smtp_server

RECIPIENT = "someone@example.com"


def mail_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "app_env": "test",
        "jwt_keys": secrets.token_urlsafe(48),
        "secrets_dir": str(tmp_path / "no-secrets-dir"),
        "secrets_refresh_seconds": 0.2,
        "public_base_url": "https://app.example",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@asynccontextmanager
async def running_mailer(
    settings: Settings, **options: Any
) -> AsyncIterator[tuple[Mailer, Metrics, SecretStore]]:
    """The app's mailer on `settings`, started, with its store following rotations."""
    store = await SecretStore.open(settings, SECRETS, only={"SMTP_PASSWORD"})
    store.start()
    metrics = Metrics()
    mailer = create_mailer(settings, store, metrics)
    for name, value in options.items():
        setattr(mailer, name, value)
    mailer.start()
    try:
        yield mailer, metrics, store
    finally:
        await mailer.aclose()
        await store.stop()
        await store.aclose()


def sent(metrics: Metrics, kind: str = "password_reset", transport: str = "smtp") -> float:
    value = metrics.registry.get_sample_value(
        "mail_sent_total", {"kind": kind, "transport": transport}
    )
    return value or 0.0


def failed(metrics: Metrics, reason: str, kind: str = "password_reset") -> float:
    value = metrics.registry.get_sample_value(
        "mail_failures_total", {"kind": kind, "reason": reason}
    )
    return value or 0.0


def reset_mail(settings: Settings, token: str | None = None) -> tuple[Mail, str]:
    token = token or secrets.token_urlsafe(32)
    return password_reset_mail(settings, RECIPIENT, token), token


async def test_a_mail_goes_through_plain_smtp(tmp_path: Path) -> None:
    with smtp_server() as server:
        settings = mail_settings(tmp_path, smtp_url=server.url, mail_from="App <app@example.com>")
        async with running_mailer(settings) as (mailer, metrics, _):
            mail, token = reset_mail(settings)
            mailer.enqueue(mail)  # not a coroutine: the request never waits for the server
            await mailer.flush()
        [received] = server.messages
    assert received.recipients == [RECIPIENT]
    assert received.mail_from == "app@example.com"
    assert received.message["Subject"] == "Reset your password"
    assert received.message["To"] == RECIPIENT
    assert mail.id in received.message["Message-ID"]
    assert received.token() == token
    assert f"https://app.example/reset-password#token={token}" in received.text
    assert "30 minutes" in received.text
    assert sent(metrics) == 1


async def test_starttls_and_auth_with_the_password_from_the_store(tmp_path: Path) -> None:
    tls = TlsFiles.make(tmp_path)
    password = secrets.token_urlsafe(16)
    with smtp_server(tls=tls, user="mailer", password=password) as server:
        settings = mail_settings(
            tmp_path, smtp_url=server.url, smtp_password=password, smtp_ssl_ca_file=tls.cert
        )
        async with running_mailer(settings) as (mailer, metrics, _):
            mailer.enqueue(email_verify_mail(settings, RECIPIENT, "verify-token"))
            await mailer.flush()
        [received] = server.messages
    assert received.tls, "STARTTLS was offered, so it was used"
    assert received.login == "mailer"
    assert [login.accepted for login in server.logins] == [True]
    assert received.token() == "verify-token"
    assert sent(metrics, "email_verify") == 1


async def test_implicit_tls_with_smtps(tmp_path: Path) -> None:
    tls = TlsFiles.make(tmp_path)
    password = secrets.token_urlsafe(16)
    with smtp_server(tls=tls, implicit_tls=True, user="mailer", password=password) as server:
        assert server.url.startswith("smtps://mailer@")
        settings = mail_settings(
            tmp_path, smtp_url=server.url, smtp_password=password, smtp_ssl_ca_file=tls.cert
        )
        async with running_mailer(settings) as (mailer, _, _):
            mailer.enqueue(reset_mail(settings)[0])
            await mailer.flush()
        [received] = server.messages
    assert received.tls
    assert received.login == "mailer"


async def test_an_unverifiable_certificate_is_refused(tmp_path: Path) -> None:
    tls = TlsFiles.make(tmp_path)
    with smtp_server(tls=tls, implicit_tls=True) as server:
        settings = mail_settings(tmp_path, smtp_url=server.url)  # the system CAs only
        async with running_mailer(settings) as (mailer, metrics, _):
            mailer.enqueue(reset_mail(settings)[0])
            await mailer.flush()
        assert server.messages == []
    assert failed(metrics, "tls") == 1


async def test_credentials_are_never_sent_without_tls(tmp_path: Path) -> None:
    password = secrets.token_urlsafe(16)
    with smtp_server() as server:  # offers neither STARTTLS nor AUTH
        url = server.url.replace("smtp://", "smtp://mailer@")
        settings = mail_settings(tmp_path, smtp_url=url, smtp_password=password)
        async with running_mailer(settings) as (mailer, metrics, _):
            mailer.enqueue(reset_mail(settings)[0])
            await mailer.flush()
        assert server.messages == []
        assert server.logins == []
    assert failed(metrics, "insecure") == 1


async def test_a_rotated_password_is_used_from_the_next_connection(tmp_path: Path) -> None:
    tls = TlsFiles.make(tmp_path)
    old, new = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    password_file = tmp_path / "smtp_password"
    password_file.write_text(old + "\n")
    with smtp_server(tls=tls, user="mailer", password=old) as server:
        settings = mail_settings(
            tmp_path,
            smtp_url=server.url,
            smtp_password_file=str(password_file),
            smtp_ssl_ca_file=tls.cert,
        )
        async with running_mailer(settings) as (mailer, metrics, store):
            mailer.enqueue(reset_mail(settings)[0])
            await mailer.flush()
            # Rotate: the server takes only the new password, the file gets it, and the store
            # (which re-reads files on change) picks it up without any restart.
            server.rotate_password(new)
            password_file.write_text(new + "\n")
            await _until(lambda: store.parsed(SMTP_PASSWORD) == new)
            mailer.enqueue(reset_mail(settings)[0])
            await mailer.flush()
        assert len(server.messages) == 2
    assert [(login.password, login.accepted) for login in server.logins] == [
        (old, True),
        (new, True),
    ]
    assert sent(metrics) == 2


async def test_temporary_failures_are_retried_with_backoff(tmp_path: Path) -> None:
    with smtp_server(fail_first=2) as server:
        settings = mail_settings(tmp_path, smtp_url=server.url, mail_send_attempts=3)
        async with running_mailer(settings, backoff_seconds=0.05) as (mailer, metrics, _):
            mail, token = reset_mail(settings)
            mailer.enqueue(mail)
            await mailer.flush()
        assert server.handler.data_commands == 3
        [received] = server.messages
    assert received.token() == token
    assert sent(metrics) == 1
    assert failed(metrics, "rejected") == 0


async def test_attempts_are_bounded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with smtp_server(fail_first=10) as server:
        settings = mail_settings(tmp_path, smtp_url=server.url, mail_send_attempts=2)
        async with running_mailer(settings, backoff_seconds=0.05) as (mailer, metrics, _):
            with caplog.at_level(logging.INFO, logger="app.mail"):
                mail, token = reset_mail(settings)
                mailer.enqueue(mail)
                await mailer.flush()
        assert server.handler.data_commands == 2
    assert failed(metrics, "rejected") == 1
    assert sent(metrics) == 0
    _assert_logged_without_secrets(caplog, mail, token)


async def test_a_server_that_never_answers_times_out_and_nothing_is_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with silent_server() as url:
        settings = mail_settings(
            tmp_path, smtp_url=url, smtp_timeout_seconds=0.3, mail_send_attempts=2
        )
        async with running_mailer(settings, backoff_seconds=0.05) as (mailer, metrics, _):
            with caplog.at_level(logging.INFO, logger="app.mail"):
                mail, token = reset_mail(settings)
                mailer.enqueue(mail)  # returns at once, though the server will never answer
                await asyncio.wait_for(mailer.flush(), timeout=10)
                # The worker survived: the next mail is tried too.
                mailer.enqueue(reset_mail(settings)[0])
                await asyncio.wait_for(mailer.flush(), timeout=10)
    assert failed(metrics, "timeout") == 2
    _assert_logged_without_secrets(caplog, mail, token)


async def test_a_refused_connection_is_a_counted_failure(tmp_path: Path) -> None:
    with smtp_server() as server:
        url = server.url
    settings = mail_settings(tmp_path, smtp_url=url, mail_send_attempts=2)  # nothing listens
    async with running_mailer(settings, backoff_seconds=0.01) as (mailer, metrics, _):
        mailer.enqueue(reset_mail(settings)[0])
        await mailer.flush()
    assert failed(metrics, "connection") == 1


async def test_outbox_mode_writes_private_eml_files(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    settings = mail_settings(tmp_path, mail_outbox_dir=outbox)
    async with running_mailer(settings) as (mailer, metrics, _):
        mail, token = reset_mail(settings)
        mailer.enqueue(mail)
        await mailer.flush()
    [written] = list(outbox.iterdir())
    assert written.name.endswith(f"-{mail.id}.eml")
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o700
    text = written.read_text()
    assert f"To: {RECIPIENT}" in text
    assert f"#token={token}" in text
    assert sent(metrics, transport="outbox") == 1


async def test_without_smtp_or_outbox_mails_are_dropped_and_counted(tmp_path: Path) -> None:
    settings = mail_settings(tmp_path)
    async with running_mailer(settings) as (mailer, metrics, _):
        mailer.enqueue(reset_mail(settings)[0])
        await mailer.flush()
    assert failed(metrics, "disabled") == 1


async def test_shutdown_drains_the_queue(tmp_path: Path) -> None:
    with smtp_server() as server:
        settings = mail_settings(tmp_path, smtp_url=server.url)
        async with running_mailer(settings) as (mailer, metrics, _):
            for _ in range(5):
                mailer.enqueue(reset_mail(settings)[0])
            # No flush: closing the mailer (the lifespan's exit) sends what is queued.
        assert len(server.messages) == 5
    assert sent(metrics) == 5


async def test_shutdown_drain_is_bounded_and_later_mails_are_refused(tmp_path: Path) -> None:
    with silent_server() as url:
        settings = mail_settings(tmp_path, smtp_url=url, smtp_timeout_seconds=5)
        async with running_mailer(settings, drain_seconds=0.2) as (mailer, metrics, _):
            for _ in range(3):
                mailer.enqueue(reset_mail(settings)[0])
        # aclose() returned after its bound: the mail in flight and the queued ones were
        # dropped, and counted.
        assert failed(metrics, "shutdown") == 3
        mailer.enqueue(reset_mail(settings)[0])
        assert failed(metrics, "shutdown") == 4


async def test_a_full_queue_drops_instead_of_blocking(tmp_path: Path) -> None:
    metrics = Metrics()
    outbox = OutboxTransport(tmp_path / "outbox")
    mailer = Mailer(outbox, "app@example.com", metrics, queue_size=2)  # not started
    settings = mail_settings(tmp_path)
    for _ in range(3):
        mailer.enqueue(reset_mail(settings)[0])
    assert failed(metrics, "queue_full") == 1
    await mailer.aclose()
    assert failed(metrics, "shutdown") == 2


async def _until(condition: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


def _assert_logged_without_secrets(
    caplog: pytest.LogCaptureFixture, mail: Mail, token: str
) -> None:
    lines = [record.getMessage() for record in caplog.records if record.name == "app.mail"]
    assert any(mail.id in line and "not sent" in line for line in lines), lines
    for line in lines:
        assert RECIPIENT not in line
        assert token not in line
        assert "reset-password" not in line
