"""Logs: JSON lines in production/test (text in development), each with the request id, and
never a secret value, an Authorization header or a password."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel

from app.config import Settings
from app.logs import JsonFormatter, TextFormatter, build_handler, configure_logging, log_format
from app.main import create_app
from app.observability.context import RequestContext, request_context
from app.secrets.redaction import install_redaction, register_secret_source
from tests.conftest import SettingsFactory
from tests.observability.conftest import LogLines
from tests.support.app import client_for, lifespan


def test_format_defaults_by_environment() -> None:
    def settings(**values: str) -> Settings:
        return Settings(_env_file=None, **values)  # type: ignore[arg-type]

    # Logging is configured from plain settings alone: production's claim checks apply later.

    assert log_format(settings(app_env="production")) == "json"
    assert log_format(settings(app_env="test")) == "json"
    assert log_format(settings(app_env="development")) == "text"
    assert log_format(settings(app_env="production", log_format="TEXT")) == "text"
    assert isinstance(build_handler(settings(app_env="development")).formatter, TextFormatter)
    assert isinstance(build_handler(settings(app_env="production")).formatter, JsonFormatter)


def test_a_record_becomes_one_json_object_with_its_extras() -> None:
    record = logging.LogRecord("app.x", logging.WARNING, __file__, 1, "a %s\nb", ("x",), None)
    record.route = "/r/{id}"
    with request_context(RequestContext("rid-1")):
        line = JsonFormatter().format(record)
    document = json.loads(line)
    assert "\n" not in line
    assert document["message"] == "a x\nb"
    assert (document["level"], document["logger"]) == ("WARNING", "app.x")
    assert (document["request_id"], document["route"]) == ("rid-1", "/r/{id}")
    assert document["ts"].endswith("Z")


def test_what_orjson_refuses_is_still_one_json_line() -> None:
    record = logging.LogRecord("app.x", logging.INFO, __file__, 1, "lone \ud800 half", (), None)
    record.huge = 2**80  # past 64 bits
    record.url = httpx.URL("https://user:url-pw-abcdef0123@db.example/x")  # not a JSON type
    line = JsonFormatter().format(record)
    document = json.loads(line)
    assert "\n" not in line
    assert document["huge"] == 2**80
    assert document["message"] == "lone \ud800 half"
    assert "url-pw-abcdef0123" not in line  # str() of other types is redacted too


def test_text_lines_carry_the_request_id() -> None:
    record = logging.LogRecord("app.x", logging.INFO, __file__, 1, "hello", (), None)
    with request_context(RequestContext("rid-2")):
        assert TextFormatter().format(record).endswith("hello [rid-2]")


FORGED = "2026-01-01 00:00:00,000 INFO    app.audit: login ok"


@pytest.mark.parametrize(
    "message",
    [
        f"GET /x\r\n{FORGED} 404",
        f"GET /x\n{FORGED}",
        f"GET /x\r{FORGED}",
        f"GET /x\u2028{FORGED}",
        f"GET /x\x85{FORGED}",
    ],
)
def test_text_lines_cannot_be_forged_through_a_message(message: str) -> None:
    record = logging.LogRecord("app.access", logging.INFO, __file__, 1, "%s", (message,), None)
    line = TextFormatter().format(record)
    assert len(line.splitlines()) == 1
    assert "\r" not in line
    assert "\n" not in line
    assert "GET /x\\" in line  # escaped, still readable


def test_text_lines_escape_other_control_characters() -> None:
    record = logging.LogRecord("app.x", logging.INFO, __file__, 1, "a\x1b[31mred\x00\x7f", (), None)
    line = TextFormatter().format(record)
    assert line.endswith("a\\x1b[31mred\\x00\\x7f")


def test_text_tracebacks_cannot_start_a_line_that_looks_like_a_record() -> None:
    try:
        raise ValueError(f"bad path /x\n{FORGED}")
    except ValueError:
        record = logging.LogRecord(
            "app.x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    lines = TextFormatter().format(record).split("\n")
    assert lines[0].endswith("failed")
    assert len(lines) > 2  # the traceback keeps its lines
    assert all(line.startswith(" ") for line in lines[1:])


async def test_a_request_path_cannot_forge_a_text_log_line(client: httpx.AsyncClient) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter())
    install_redaction(handler)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        response = await client.get("/nothing%0D%0A" + FORGED.replace(" ", "%20"))
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    assert response.status_code == 404
    access = [line for line in stream.getvalue().splitlines() if "app.access" in line]
    assert len(access) == 1
    assert "GET /nothing\\r\\n2026-01-01" in access[0]
    assert not any(line.startswith("2026-01-01") for line in stream.getvalue().splitlines())


async def test_access_lines_describe_each_request(
    client: httpx.AsyncClient, json_logs: LogLines
) -> None:
    response = await client.get("/health/ready?token=abc", headers={"X-Request-ID": "ready-1"})
    access = [line for line in json_logs() if line["logger"] == "app.access"]
    line = next(line for line in access if line.get("request_id") == "ready-1")
    assert response.headers["x-request-id"] == "ready-1"
    assert line["method"] == "GET"
    assert line["path"] == "/health/ready"  # never the query string
    assert line["route"] == "/health/ready"
    assert line["status"] == 200
    assert line["duration_ms"] >= 0
    assert "token=abc" not in json.dumps(access)


async def test_the_access_line_shortcut_writes_what_a_record_would_and_no_secret(
    client: httpx.AsyncClient, canary: str
) -> None:
    # With the root handler as configure_logging builds it and nothing else on the way, the
    # access line skips the LogRecord (app/logs.py `emit_fields`); anything added on the way
    # takes the ordinary path. Both must write the same line, redacted the same way.
    stream = io.StringIO()
    handler = build_handler(Settings(_env_file=None, app_env="production"))  # type: ignore[call-arg]
    handler.setStream(stream)  # type: ignore[attr-defined]
    install_redaction(handler)
    unregister = register_secret_source(lambda: [canary])
    root, access = logging.getLogger(), logging.getLogger("app.access")
    saved, level = root.handlers[:], root.level
    root.handlers, root.level = [handler], logging.INFO
    try:
        await client.get(f"/nothing/{canary}", headers={"X-Request-ID": "shortcut"})
        access.addFilter(_count_records)
        await client.get(f"/nothing/{canary}", headers={"X-Request-ID": "ordinary"})
    finally:
        access.removeFilter(_count_records)
        root.handlers, root.level = saved, level
        unregister()
        handler.close()
    assert _count_records.seen == 1  # only the second request built a record
    raw = stream.getvalue()
    assert canary not in raw
    documents = [json.loads(line) for line in raw.splitlines()]
    lines = {line["request_id"]: line for line in documents if line["logger"] == "app.access"}
    shortcut, ordinary = lines["shortcut"], lines["ordinary"]
    assert list(shortcut) == list(ordinary)  # same fields, same order
    assert shortcut["path"] == ordinary["path"] == "/nothing/[REDACTED]"
    for line in (shortcut, ordinary):
        assert line["message"] == f"GET /nothing/[REDACTED] 404 {line['duration_ms']:.2f}ms"
    ignore = {"ts", "request_id", "duration_ms", "message"}
    assert {k: v for k, v in shortcut.items() if k not in ignore} == {
        k: v for k, v in ordinary.items() if k not in ignore
    }


class _CountRecords(logging.Filter):
    seen = 0

    def filter(self, record: logging.LogRecord) -> bool:
        type(self).seen += 1
        return True


_count_records = _CountRecords()


@pytest.fixture
def canary() -> str:
    return "canary-" + "Zq7" * 12


async def test_no_secret_header_or_password_reaches_the_logs(
    make_settings: SettingsFactory,
    tmp_path: Path,
    canary: str,
    json_logs: LogLines,
) -> None:
    token_file = tmp_path / "metrics_token"
    token_file.write_text(canary)
    app: FastAPI = create_app(make_settings(metrics_token_file=str(token_file)))
    logger = logging.getLogger("app.test")
    bearer = "opaque-access-token-" + "x9" * 20

    async def careless(request: Request, body: Login) -> None:
        # What a careless handler could do: log the headers and the secret, and fail with the
        # secret in the exception text. (It does not log the body: nothing could mask that.)
        logger.info("headers %s", dict(request.headers))
        logger.warning("token is %s", canary)
        raise RuntimeError(f"could not use {canary}")

    app.add_api_route("/careless", careless, methods=["POST"])
    password = "Tr0ub4dor&3-horse-battery"
    async with (
        lifespan(app),
        client_for(app, raise_app_exceptions=False) as client,
    ):
        scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {canary}"})
        failed = await client.post(
            "/careless",
            json={"email": "a@example.com", "password": password},
            headers={"Authorization": f"Bearer {bearer}", "X-Request-ID": "careless-1"},
        )
        invalid = await client.post(
            "/careless",
            json={"email": ["not", "a", "string"], "password": password},
            headers={"Authorization": f"Bearer {bearer}"},
        )
    assert scraped.status_code == 200
    assert failed.status_code == 500
    assert invalid.status_code == 422
    assert password not in invalid.text

    lines = json_logs()
    raw = json_logs.raw()  # type: ignore[attr-defined]
    assert canary not in raw
    assert bearer not in raw
    assert password not in raw
    # The crash is logged, with its request id and a (redacted) traceback.
    crash = [
        line
        for line in lines
        if line.get("request_id") == "careless-1" and line["level"] == "ERROR"
    ]
    assert crash
    assert any("RuntimeError" in line.get("exc_info", "") for line in crash)
    # The careless handler's lines are there, masked, not dropped.
    assert any(line.get("message", "").startswith("token is ") for line in lines)


class Login(BaseModel):
    email: str
    password: str


def test_configure_logging_routes_uvicorn_through_the_root_handler() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging(Settings(_env_file=None, app_env="production"))
        handler = root.handlers[0]
        assert isinstance(handler.formatter, JsonFormatter)
        stream = io.StringIO()
        handler.setStream(stream)  # type: ignore[attr-defined]
        logging.getLogger("uvicorn.error").info("Uvicorn running")
        handler.flush()  # written by the handler's writer thread
        assert json.loads(stream.getvalue())["logger"] == "uvicorn.error"
        assert not logging.getLogger("uvicorn.access").handlers
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


@pytest.fixture
def restore_root() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield root
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


def _writers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "log-writer"]


def test_configuring_again_flushes_and_stops_the_previous_writer(
    restore_root: logging.Logger,
) -> None:
    settings = Settings(_env_file=None, app_env="production")
    before = len(_writers())
    configure_logging(settings)
    first = restore_root.handlers[0]
    stream = io.StringIO()
    first.setStream(stream)  # type: ignore[attr-defined]
    for n in range(300):
        logging.getLogger("app.x").info("line %d", n)
    configure_logging(settings)
    assert len(stream.getvalue().splitlines()) == 300  # close() wrote what was queued
    logging.getLogger("app.x").info("to the new handler")
    restore_root.handlers[0].flush()
    assert len(_writers()) == before + 1


def test_records_are_redacted_and_stamped_before_any_other_handler_sees_them(
    restore_root: logging.Logger,
) -> None:
    configure_logging(Settings(_env_file=None, app_env="production"))
    seen: list[logging.LogRecord] = []

    class Later(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    restore_root.addHandler(Later())
    with request_context(RequestContext("rid-bg")):
        logging.getLogger("app.x").info("auth %s", "Authorization: Bearer abcdefghijklmnop")
    assert seen[0].getMessage() == "auth Authorization: [REDACTED]"
    assert seen[0].request_id == "rid-bg"  # type: ignore[attr-defined]


_EXIT_SCRIPT = """
import logging, os, signal, sys
from app.config import Settings
from app.logs import configure_logging
configure_logging(Settings(_env_file=None, app_env="production"))
log = logging.getLogger("app.exit")
how = sys.argv[1]
log.info("started")
name = "line"
if how == "fork":  # both processes then write to one pipe at once
    name = "child" if os.fork() == 0 else "parent"
for n in range(3000):
    log.info("%s %d", name, n)
if how == "fork" and name == "parent":
    os.wait()
elif how == "sigterm":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # as uvicorn: a graceful exit
    os.kill(os.getpid(), signal.SIGTERM)
"""


@pytest.mark.parametrize("how", ["return", "sigterm", "fork"])
def test_every_line_is_written_before_the_process_exits(how: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _EXIT_SCRIPT, how],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # Two processes on one pipe (fork): their lines interleave, but none is torn (each write is
    # at most PIPE_BUF bytes and ends a line), and each process's lines keep their order.
    messages = [json.loads(line)["message"] for line in done.stderr.splitlines()]
    assert messages.count("started") == 1
    for name in ("parent", "child") if how == "fork" else ("line",):
        own = [m for m in messages if m.startswith(name + " ")]
        assert own == [f"{name} {n}" for n in range(3000)]
    assert len(messages) == 1 + (6000 if how == "fork" else 3000)


def test_a_stuck_sink_holds_the_logging_thread_instead_of_growing_the_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import app.logs

    monkeypatch.setattr(app.logs, "_MAX_PENDING", 5)
    released = threading.Event()

    class StuckStream(io.StringIO):
        def write(self, text: str) -> int:
            released.wait(30)
            return super().write(text)

    stream = StuckStream()
    handler = app.logs.BackgroundStreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.stuck")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        burst = threading.Thread(target=lambda: [logger.warning("n %d", n) for n in range(50)])
        burst.start()
        burst.join(0.5)
        assert burst.is_alive()  # waiting for the writer, not queueing all 50
        assert handler._records.qsize() <= 6
        released.set()
        burst.join(30)
        handler.flush()
        assert len(stream.getvalue().splitlines()) == 50
    finally:
        released.set()
        logger.removeHandler(handler)
        handler.close()
