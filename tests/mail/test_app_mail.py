"""The mailer as the app owns it: opened by the lifespan (refusing to start when production has
no mail server), reachable from routes as `MailerDep`, counted in `/metrics`, drained on exit."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from app.api.deps import MailerDep, SettingsDep
from app.mail import Mailer, password_reset_mail
from app.main import create_app
from app.secrets import ConfigError
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


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({}, ["SMTP_URL", "PUBLIC_BASE_URL"]),
        ({"public_base_url": "https://app.example"}, ["SMTP_URL"]),
        ({"smtp_url": "smtp://mail.example.internal"}, ["PUBLIC_BASE_URL"]),
    ],
)
async def test_production_without_a_mail_server_does_not_start(
    make_settings: SettingsFactory, overrides: dict[str, str], named: list[str]
) -> None:
    settings = make_settings(app_env="production", **overrides)
    with pytest.raises(ConfigError) as raised:
        async with running_app(settings):
            pass
    assert [problem.setting for problem in raised.value.problems] == named


async def test_production_with_a_mail_server_starts(make_settings: SettingsFactory) -> None:
    settings = make_settings(
        app_env="production",
        smtp_url="smtp://mail.example.internal",
        public_base_url="https://app.example",
    )
    async with running_app(settings) as app:
        assert resources(app).mailer.transport.name == "smtp"
