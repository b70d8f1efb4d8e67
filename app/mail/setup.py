"""Choosing the transport from the settings, and what startup refuses.

`SMTP_URL` wins. Without it, outside production, mails go to `MAIL_OUTBOX_DIR`; otherwise (and
always in production) they are dropped, with a warning at startup: a service that sends no mail
must still start, and password reset then cannot work, which `config check` and the warning say.
An `http://` `PUBLIC_BASE_URL` in production is warned about too (mailed links carry tokens).
Startup refuses only settings that cannot work together (an SMTP user without a password, ...).
"""

from __future__ import annotations

import logging
import os
from urllib.parse import urlsplit

from app.config import SMTP_PASSWORD, Settings
from app.mail.mailer import Mailer, MailObserver
from app.mail.transports import DisabledTransport, OutboxTransport, SmtpTransport, Transport
from app.secrets import ConfigError, ConfigProblem, SecretStore

logger = logging.getLogger("app.mail")


def _origin(settings: Settings, field: str) -> str:
    """Where a plain setting came from, as the CLI says it (the environment, `.env` included)."""
    return "env" if field in settings.model_fields_set else "default"


def mail_problems(settings: Settings, store: SecretStore) -> list[ConfigProblem]:
    """What keeps the mail settings from working, one problem per setting (never a value)."""
    problems: list[ConfigProblem] = []
    server = settings.smtp_server
    if server is not None and SMTP_PASSWORD.name not in store.problems:
        has_password = store.entry(SMTP_PASSWORD.name) is not None
        if server.username is not None and not has_password:
            problems.append(
                ConfigProblem(
                    SMTP_PASSWORD.name,
                    f"searched env {SMTP_PASSWORD.name}, {SMTP_PASSWORD.file_variable} and "
                    f"SECRETS_DIR={settings.secrets_dir}",
                    "is required: SMTP_URL names a user",
                )
            )
        if server.username is None and has_password:
            problems.append(
                ConfigProblem(
                    "SMTP_URL",
                    _origin(settings, "smtp_url"),
                    "names no user, but SMTP_PASSWORD is set (smtp://user@host for AUTH)",
                )
            )
    ca_file = settings.smtp_ssl_ca_file
    if server is not None and ca_file is not None and not os.access(ca_file, os.R_OK):
        problems.append(
            ConfigProblem(
                "SMTP_SSL_CA_FILE", _origin(settings, "smtp_ssl_ca_file"), "is not a readable file"
            )
        )
    return problems


def transport_for(settings: Settings, store: SecretStore) -> Transport:
    server = settings.smtp_server
    if server is not None:
        return SmtpTransport(
            server,
            store,
            timeout=settings.smtp_timeout_seconds,
            ca_file=settings.smtp_ssl_ca_file,
            local_hostname=urlsplit(settings.public_base_url).hostname,
        )
    if settings.mail_outbox_dir is not None and not settings.is_production:
        return OutboxTransport(settings.mail_outbox_dir)
    return DisabledTransport()


def create_mailer(
    settings: Settings, store: SecretStore, observer: MailObserver | None = None
) -> Mailer:
    """The app's mailer (not started); `ConfigError` when the mail settings cannot work."""
    problems = mail_problems(settings, store)
    if problems:
        raise ConfigError(problems)
    transport = transport_for(settings, store)
    # Warnings, not refusals: a service that sends no mail (or a test of production settings)
    # must still start; `config check` and this line tell the operator what is missing.
    if isinstance(transport, DisabledTransport):
        logger.warning(
            "mail is disabled: SMTP_URL is not set (and, outside production, neither is "
            "MAIL_OUTBOX_DIR), so password reset and verification mails are dropped"
        )
    if settings.is_production and urlsplit(settings.public_base_url).scheme != "https":
        logger.warning(
            "PUBLIC_BASE_URL is not https: mailed links carry single-use tokens in the clear"
        )
    return Mailer(transport, settings.mail_from, observer, attempts=settings.mail_send_attempts)
