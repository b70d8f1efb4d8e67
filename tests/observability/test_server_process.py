"""The real server (`python -m app serve`) over TCP: every line it prints is JSON (uvicorn's own
included), the access line carries the request id, /metrics answers with the bearer token, and
neither the token, an Authorization header nor a password appears in the output."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import httpx
import pytest

from tests.observability.scraping import parse_metrics, value
from tests.support.server import serve

pytestmark = pytest.mark.slow


def test_served_logs_are_json_with_request_ids_and_no_secrets(
    server_env: dict[str, str],
    tmp_path: Path,
) -> None:
    canary = "metrics-canary-" + secrets.token_hex(16)
    password = "pw-canary-" + secrets.token_hex(8)
    email = f"obs-{secrets.token_hex(6)}@example.com"
    env = {**server_env, "METRICS_TOKEN": canary}
    with serve(env, tmp_path) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            live = client.get("/health/live", headers={"X-Request-ID": "tcp-live-1"})
            assert live.headers["x-request-id"] == "tcp-live-1"
            assert (
                client.post(
                    "/api/v1/auth/register", json={"email": email, "password": password}
                ).status_code
                == 201
            )
            assert (
                client.post(
                    "/api/v1/auth/login",
                    data={"username": email, "password": "x"},
                    headers={"X-Request-ID": "tcp-login-1"},
                ).status_code
                == 401
            )
            assert client.get("/metrics").status_code == 401
            scraped = client.get("/metrics", headers={"Authorization": f"Bearer {canary}"})
            assert scraped.status_code == 200
        server.process.terminate()
        server.process.wait(timeout=20)
        output = server.output()

    samples = parse_metrics(scraped.text)
    # The start-up wait polled /health/live too.
    assert (value(samples, "http_requests_total", route="/health/live", status="200") or 0) >= 2
    assert value(samples, "auth_login_failures_total", reason="invalid_credentials") == 1
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert any(line["logger"].startswith("uvicorn") for line in lines)
    access = {line.get("request_id"): line for line in lines if line["logger"] == "app.access"}
    assert access["tcp-login-1"]["route"] == "/api/v1/auth/login"
    assert access["tcp-login-1"]["status"] == 401
    audit = [line for line in lines if line["logger"] == "app.audit"]
    assert any(
        line.get("event") == "auth.login_failed" and line.get("request_id") == "tcp-login-1"
        for line in audit
    )
    for needle in (canary, password, email, "Bearer "):
        assert needle not in output


def test_every_worker_logs_json(server_env: dict[str, str], tmp_path: Path) -> None:
    """With WORKERS > 1 each worker is a new interpreter: its lines must be JSON too."""
    with serve({**server_env, "WORKERS": "2"}, tmp_path, timeout=60) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for n in range(6):
                client.get("/api/v1/users/me", headers={"X-Request-ID": f"w-{n}"})
        server.process.terminate()
        server.process.wait(timeout=30)
        output = server.output()
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    access = [line for line in lines if line["logger"] == "app.access"]
    assert {line["request_id"] for line in access} >= {f"w-{n}" for n in range(6)}
