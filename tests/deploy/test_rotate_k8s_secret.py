"""docker/rotate_k8s_secret.py against a stand-in Kubernetes API (HTTPS, bearer token,
resourceVersion conflicts) and the real `python -m app keys rotate/retire`."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.keys.signing import new_dev_ring as new_jwt_keys
from tests.deploy.tools import ROOT
from tests.support.cloud.http import FakeServer, Recorded, Reply, self_signed_certificate

SCRIPT = ROOT / "docker" / "rotate_k8s_secret.py"
TOKEN = "sa-token-for-tests"  # pragma: allowlist secret
PATH = "/api/v1/namespaces/ns1/secrets/app-jwt-keys"


class FakeApi:
    """One Secret, GET and PUT only, optimistic concurrency like the real API server."""

    def __init__(self, ring: str) -> None:
        self.secret: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "app-jwt-keys", "namespace": "ns1", "resourceVersion": "1"},
            "data": {"jwt_keys": base64.b64encode(ring.encode()).decode()},
        }
        self.bump_before_put = False
        self.server = FakeServer()
        self.server.route("GET", ".*")(self._get)
        self.server.route("PUT", ".*")(self._put)

    @property
    def requests(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.server.calls()]

    def ring(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(base64.b64decode(self.secret["data"]["jwt_keys"]))
        return loaded

    @staticmethod
    def _refused(request: Recorded) -> Reply | None:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}" or request.path != PATH:
            return Reply(403, {"kind": "Status", "code": 403})
        return None

    def _get(self, _: re.Match[str], request: Recorded) -> Reply:
        return self._refused(request) or Reply(200, self.secret)

    def _put(self, _: re.Match[str], request: Recorded) -> Reply:
        if refused := self._refused(request):
            return refused
        body = json.loads(request.body)
        if self.bump_before_put:
            self.secret["metadata"]["resourceVersion"] = "99"
        current = self.secret["metadata"]["resourceVersion"]
        if body["metadata"].get("resourceVersion") != current:
            return Reply(409, {"kind": "Status", "code": 409})
        body["metadata"]["resourceVersion"] = str(int(current) + 1)
        self.secret = body
        return Reply(200, body)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[FakeApi, str, Path]]:
    state = FakeApi(new_jwt_keys())
    with state.server.running(tls_dir=tmp_path):
        sa_dir = tmp_path / "serviceaccount"
        sa_dir.mkdir()
        (sa_dir / "token").write_text(TOKEN)
        (sa_dir / "namespace").write_text("ns1")
        (sa_dir / "ca.crt").write_bytes((tmp_path / "fake-tls.crt").read_bytes())
        yield state, state.server.url, sa_dir


def _run(api_url: str, sa_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "APP_ENV": "production", "PYTHONPATH": str(ROOT)}
    args = ["--secret=app-jwt-keys", "--key=jwt_keys", f"--api-server={api_url}"]
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args, f"--service-account-dir={sa_dir}", *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_adds_a_key_keeps_the_old_one_and_updates_the_secret(
    api: tuple[FakeApi, str, Path],
) -> None:
    state, url, sa_dir = api
    before = state.ring()["keys"]
    result = _run(url, sa_dir, "--activate-in=3600", "--keep-seconds=1296000")
    assert result.returncode == 0, result.stderr
    after = state.ring()["keys"]
    assert len(after) == len(before) + 1
    assert before[0]["kid"] in {k["kid"] for k in after}
    assert state.secret["metadata"]["resourceVersion"] == "2"
    assert state.requests == [f"GET {PATH}", f"PUT {PATH}"]
    # Nothing secret on the job's output.
    for key in after:
        for field in ("k", "d", "p", "q", "dp", "dq", "qi"):
            if field in key:
                assert key[field] not in result.stdout + result.stderr


def test_a_concurrent_change_fails_without_overwriting(api: tuple[FakeApi, str, Path]) -> None:
    state, url, sa_dir = api
    state.bump_before_put = True
    before = state.ring()
    result = _run(url, sa_dir)
    assert result.returncode == 1
    assert "409" in result.stderr
    assert state.ring() == before


def test_refuses_a_server_it_cannot_verify(api: tuple[FakeApi, str, Path], tmp_path: Path) -> None:
    state, url, sa_dir = api
    other = tmp_path / "other"
    other.mkdir()
    other_ca, _ = self_signed_certificate(other)
    (sa_dir / "ca.crt").write_bytes(other_ca.read_bytes())
    before = state.ring()
    result = _run(url, sa_dir)
    assert result.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr
    assert state.ring() == before
    assert state.requests == []


def test_refuses_plain_http(api: tuple[FakeApi, str, Path]) -> None:
    _, url, sa_dir = api
    result = _run(url.replace("https://", "http://"), sa_dir)
    assert result.returncode == 1
    assert "https://" in result.stderr
