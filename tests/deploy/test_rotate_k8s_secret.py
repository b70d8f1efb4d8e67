"""docker/rotate_k8s_secret.py against a stand-in Kubernetes API (HTTPS, bearer token,
resourceVersion conflicts) and the real `python -m app keys rotate/retire`."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.secrets.devfiles import new_jwt_keys
from tests.deploy.tools import ROOT

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
        self.requests: list[str] = []
        self.bump_before_put = False

    def ring(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(base64.b64decode(self.secret["data"]["jwt_keys"]))
        return loaded


def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "ca.crt", tmp_path / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[FakeApi, str, Path]]:
    state = FakeApi(new_jwt_keys())

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            state.requests.append(f"{self.command} {self.path}")
            if self.headers.get("Authorization") != f"Bearer {TOKEN}" or self.path != PATH:
                self._reply(403, {"kind": "Status", "code": 403})
                return False
            return True

        def do_GET(self) -> None:
            if self._authorized():
                self._reply(200, state.secret)

        def do_PUT(self) -> None:
            if not self._authorized():
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if state.bump_before_put:
                state.secret["metadata"]["resourceVersion"] = "99"
            current = state.secret["metadata"]["resourceVersion"]
            if body["metadata"].get("resourceVersion") != current:
                self._reply(409, {"kind": "Status", "code": 409})
                return
            body["metadata"]["resourceVersion"] = str(int(current) + 1)
            state.secret = body
            self._reply(200, body)

    cert, key = _certificate(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sa_dir = tmp_path / "serviceaccount"
    sa_dir.mkdir()
    (sa_dir / "token").write_text(TOKEN)
    (sa_dir / "namespace").write_text("ns1")
    (sa_dir / "ca.crt").write_bytes(cert.read_bytes())
    try:
        yield state, f"https://127.0.0.1:{server.server_address[1]}", sa_dir
    finally:
        server.shutdown()
        server.server_close()


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
    other_ca, _ = _certificate(other)
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
