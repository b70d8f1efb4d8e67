"""Capture log records as the production handler writes them: JSON, behind the secrets core's
redaction filter."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.logs import JsonFormatter
from app.secrets.redaction import install_redaction

LogLines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def json_logs() -> Iterator[LogLines]:
    """Every record any logger emits during the test, as the parsed JSON lines the production
    handler writes. Parsing fails the test if a line is not valid JSON."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    install_redaction(handler)
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)

    def lines() -> list[dict[str, Any]]:
        handler.flush()
        return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

    lines.raw = stream.getvalue  # type: ignore[attr-defined]
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
