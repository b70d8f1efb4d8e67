"""The mailer as the app owns it: opened by the lifespan (refusing to start when production has
no mail server), reachable from routes as `MailerDep`, counted in `/metrics`, drained on exit."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import pytest

from app.api.deps import MailerDep, SettingsDep
from app.mail import Mailer, password_reset_mail
from app.main import create_app
from tests.conftest import SettingsFactory
from tests.support.app import client_for, lifespan, resources, running_app
from tests.support.smtp import smtp_server


async def test_the_lifespan_owns_a_started_mailer_and_drains_it_on_exit(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    async with running_app(make_settings(mail_outbox_dir=outbox)) as app:
        mailer = resources(app).mailer
        assert isinstance(mailer, Mailer)
        token = secrets.token_urlsafe(32)
        mailer.enqueue(password_reset_mail(resources(app).settings, "a@example.com", token))
        # No flush: leaving the lifespan drains the queue before anything closes.
    [written] = list(outbox.iterdir())
    assert f"#token={token}" in written.read_text()


async def test_a_route_mails_through_mailer_dep_and_metrics_count_it(
    make_settings: SettingsFactory,
) -> None:
    with smtp_server() as server:
        app = create_app(make_settings(smtp_url=server.url))

        @app.post("/test-only/mail", status_code=202)
        async def mail_someone(mailer: MailerDep, settings: SettingsDep) -> None:
            mailer.enqueue(password_reset_mail(settings, "b@example.com", "a-token"))

        async with lifespan(app) as running, client_for(running) as client:
            assert (await client.post("/test-only/mail")).status_code == 202
            await resources(running).mailer.flush()
            metrics = (await client.get("/metrics")).text
        [received] = server.messages
    assert received.recipients == ["b@example.com"]
    assert 'mail_sent_total{kind="password_reset",transport="smtp"} 1.0' in metrics
    assert 'mail_failures_total{kind="email_verify",reason="timeout"} 0.0' in metrics


PRODUCTION_CLAIMS = {
    "app_env": "production",
    "jwt_issuer": "https://auth.example.test",
    "jwt_audience": "https://api.example.test",
}


async def test_production_without_a_mail_server_starts_and_says_mail_is_off(
    make_settings: SettingsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A service that sends no mail must still start; the operator is told, loudly, that
    password reset cannot work, and that http:// links would carry tokens in the clear."""
    settings = make_settings(**PRODUCTION_CLAIMS, mail_outbox_dir="/tmp/never-in-production")
    with caplog.at_level(logging.WARNING, logger="app.mail"):
        async with running_app(settings) as app:
            assert resources(app).mailer.transport.name == "disabled"
    warnings = " ".join(r.getMessage() for r in caplog.records)
    assert "mail is disabled" in warnings
    assert "PUBLIC_BASE_URL is not https" in warnings


async def test_production_with_a_mail_server_starts(make_settings: SettingsFactory) -> None:
    settings = make_settings(
        **PRODUCTION_CLAIMS,
        smtp_url="smtp://mail.example.internal",
        public_base_url="https://app.example",
    )
    async with running_app(settings) as app:
        assert resources(app).mailer.transport.name == "smtp"
