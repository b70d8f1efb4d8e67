"""Keep vendor SDK wire logs out of our logs.

At DEBUG, botocore logs whole response bodies (a `GetSecretValue` response IS the secret), and
Google/Azure clients can log payloads too. The redaction filter only knows values already in the
store, and a JSON secret's other fields never reach it, so these loggers are capped at INFO
whatever `LOG_LEVEL` says.
"""

from __future__ import annotations

import logging


def quiet_sdk_loggers(*names: str) -> None:
    for name in names:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)
