"""Key rotation end to end: the real server process reads JWT_KEYS_FILE, the file is rewritten
by the CLI while it serves, and every step of the runbook in docs/jwt.md holds over HTTP."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support.server import run_cli, serve

PASSWORD = "rotation password 1"


def _eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.1)


def _kids(path: Path) -> list[str]:
    return [key["kid"] for key in json.loads(path.read_text())["keys"]]


@pytest.mark.slow
def test_rotation_over_http_with_the_ring_file_rewritten_while_serving(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    ring = tmp_path / "jwt_keys.json"
    cli_env = {k: v for k, v in server_env.items() if k != "JWT_KEYS"}
    assert run_cli("keys", "rotate", "--file", str(ring), env=cli_env).returncode == 0
    [old_kid] = _kids(ring)
    env = {**cli_env, "JWT_KEYS_FILE": str(ring), "SECRETS_REFRESH_SECONDS": "1"}
    with serve(env, tmp_path) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        email = f"rot-{uuid.uuid4().hex[:8]}@example.com"
        assert (
            http.post(
                "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
            ).status_code
            == 201
        )

        def login() -> str:
            response = http.post(
                "/api/v1/auth/login", data={"username": email, "password": PASSWORD}
            )
            assert response.status_code == 200, response.text
            token: str = response.json()["access_token"]
            return token

        def me(token: str) -> int:
            return http.get(
                "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
            ).status_code

        def kid(token: str) -> str:
            return str(jwt.get_unverified_header(token)["kid"])

        old_token = login()
        assert kid(old_token) == old_kid

        # 1. Add the new key verify-only: it signs from nbf = now + 6 s.
        added = run_cli("keys", "rotate", "--file", str(ring), "--activate-in", "6", env=cli_env)
        assert added.returncode == 0, added.stderr
        new_kid = _kids(ring)[0]
        assert set(_kids(ring)) == {old_kid, new_kid}

        # 2. Within SECRETS_REFRESH_SECONDS the server publishes it, but still signs with old.
        _eventually(
            lambda: (
                new_kid in {k["kid"] for k in http.get("/.well-known/jwks.json").json()["keys"]}
            ),
            3,
            "the new key appears in the JWKS",
        )
        assert kid(login()) == old_kid

        # 3. Once its nbf has passed, new tokens carry the new kid; old tokens still work.
        _eventually(lambda: kid(login()) == new_kid, 10, "the new key signs")
        new_token = login()
        assert me(old_token) == 200
        assert me(new_token) == 200

        # 4. Retire the old key (it stopped signing > 0 s ago): its tokens are refused.
        retired = run_cli("keys", "retire", "--file", str(ring), "--keep-seconds", "0", env=cli_env)
        assert retired.returncode == 0, retired.stderr
        assert _kids(ring) == [new_kid]
        _eventually(lambda: me(old_token) == 401, 3, "tokens of the removed key are refused")
        assert me(new_token) == 200
    assert "BEGIN" not in server.output()
