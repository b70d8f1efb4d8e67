"""Audit events: one structured line each, on their own logger, never carrying a secret value."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

audit_logger = logging.getLogger("app.audit")


def audit(event: str, **fields: Any) -> None:
    record = {"event": event, "ts": round(time.time(), 3), **fields}
    audit_logger.info(json.dumps(record, default=str, sort_keys=True))
