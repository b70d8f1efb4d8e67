"""Process-wide logging setup, done once by the entry points (never at import time).

One handler on the root logger, so everything (our loggers, uvicorn's, libraries') goes through
the same formatter and filters:
- `LOG_FORMAT=json` (default in production and test): one JSON object per line with `ts`,
  `level`, `logger`, `message`, the current `request_id`, and any `extra` fields;
- `LOG_FORMAT=text` (default in development): a human-readable line.
Audit events (logger `app.audit`) are written as their own JSON object in JSON mode.
The secrets core's redaction filter sits on that handler, so every format only ever sees
redacted text.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from app.config import Settings
from app.observability.context import current_request_id
from app.secrets.redaction import install_on_root, redact

#: LogRecord attributes that are not `extra` fields.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    "audit",
    "request_id",
}

#: Loggers of the server and libraries that must not keep handlers of their own.
_ROUTED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record. Values that are not JSON types are written with `str()`
    (a `SecretStr` therefore shows as `**********`)."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
        }
        audit = getattr(record, "audit", None)
        if isinstance(audit, dict):
            document.update({k: v for k, v in audit.items() if k != "ts"})
        else:
            document["message"] = record.getMessage()
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id is not None and "request_id" not in document:
            document["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_") and key not in document:
                # The redaction filter rewrote the message; `extra` strings are masked here.
                document[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            document["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:  # the redaction filter replaces exc_info with redacted text
            document["exc_info"] = record.exc_text
        if record.stack_info:
            document["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(document, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human-readable development logs: time, level, logger, message, then `[request id]`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id is not None:
            first, newline, rest = line.partition("\n")
            line = f"{first} [{request_id}]{newline}{rest}"
        return line


def log_format(settings: Settings) -> str:
    if settings.log_format is not None:
        return settings.log_format
    return "text" if settings.app_env == "development" else "json"


def build_handler(settings: Settings) -> logging.Handler:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format(settings) == "json" else TextFormatter())
    return handler


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(build_handler(settings))
    root.setLevel(level)
    # uvicorn's own loggers propagate to the root handler instead of printing their own format.
    for name in _ROUTED_LOGGERS:
        routed = logging.getLogger(name)
        routed.handlers.clear()
        routed.propagate = True
    install_on_root()  # the new handler masks loaded secret values and credentials
