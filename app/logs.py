"""Process-wide logging setup, done once by the entry points (never at import time)."""

from __future__ import annotations

import logging

from app.config import Settings


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper())
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    install_log_redaction()


def install_log_redaction() -> None:
    """Secrets hygiene (owned by the secrets core): every root handler masks loaded secret values
    and credentials. Call again after adding or replacing a root handler."""
    from app.secrets.redaction import install_on_root

    install_on_root()
