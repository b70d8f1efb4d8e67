"""SPEC section 2, startup failures: `serve` and `config check` each exit non-zero quickly
(`STARTUP_BUDGET`) with ONE line per problem that names the setting and where it came from,
never the value."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from app.keys.data import new_dev_data_ring
from app.secrets.checks import is_placeholder
from tests.support.server import PRODUCTION, ROOT, base_env
from tests.support.services import TEST_REDIS_URL

GOOD_KEY = "startup-" + secrets.token_urlsafe(40)  # strong: production takes it
GOOD_DATA_KEYS = new_dev_data_ring()  # random 256-bit keys: production takes them

#: Seconds a failing start may take: generous for a busy machine, far below a network hang.
STARTUP_BUDGET = 20


@dataclass
class Case:
    """`prepare(tmp)` returns env overrides; `expected` maps setting -> text its line holds."""

    prepare: Callable[[Path], dict[str, str]]
    expected: dict[str, str]
    secret_values: list[str] = field(default_factory=list)
    remove: tuple[str, ...] = ()


def _write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path


def _weak_rsa_ring() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the point
    jwk = json.loads(RSAAlgorithm.to_jwk(key))
    jwk.update({"kid": "weak-rsa", "alg": "RS256"})
    return json.dumps({"keys": [jwk]})


def _data_ring(material: bytes) -> str:
    k = base64.urlsafe_b64encode(material).decode().rstrip("=")
    return json.dumps({"keys": [{"kty": "oct", "alg": "A256GCM", "kid": "startup", "k": k}]})


CASES: dict[str, Case] = {
    "required-secret-missing": Case(
        lambda tmp: {},
        {"JWT_KEYS": "(searched env JWT_KEYS, JWT_KEYS_FILE and SECRETS_DIR="},
        remove=("JWT_KEYS",),
    ),
    "required-secret-empty": Case(
        lambda tmp: {"JWT_KEYS": ""}, {"JWT_KEYS": "(from env JWT_KEYS): is empty"}
    ),
    "file-missing": Case(
        lambda tmp: {"JWT_KEYS_FILE": str(tmp / "absent")},
        {"JWT_KEYS": "JWT_KEYS_FILE="},
        remove=("JWT_KEYS",),
    ),
    "file-is-a-directory": Case(
        lambda tmp: {"REDIS_PASSWORD_FILE": str(tmp)}, {"REDIS_PASSWORD": "REDIS_PASSWORD_FILE="}
    ),
    "file-not-text": Case(
        lambda tmp: {"DATABASE_PASSWORD_FILE": str(_write(tmp / "pw", b"\xff\xfe\x00binary"))},
        {"DATABASE_PASSWORD": "not UTF-8"},
    ),
    "file-path-empty": Case(
        lambda tmp: {"REDIS_PASSWORD_FILE": ""}, {"REDIS_PASSWORD": "REDIS_PASSWORD_FILE"}
    ),
    "both-value-and-file": Case(
        lambda tmp: {
            "DATABASE_PASSWORD": "both-set-value-123",
            "DATABASE_PASSWORD_FILE": str(_write(tmp / "pw", "file-value-456")),
        },
        {"DATABASE_PASSWORD": "DATABASE_PASSWORD and DATABASE_PASSWORD_FILE"},
        secret_values=["both-set-value-123", "file-value-456"],
    ),
    "dir-file-unreadable": Case(
        lambda tmp: {
            "SECRETS_DIR": str(tmp / "mount"),
            "DUMMY": str(_write(tmp / "mount" / "redis_password", b"\xc3\x28bad")),
        },
        {"REDIS_PASSWORD": "SECRETS_DIR"},
    ),
    "dir-link-escapes": Case(
        lambda tmp: _escaping_link(tmp),
        {"JWT_KEYS": "leaving"},
        secret_values=["escaped-" + "e" * 40],
        remove=("JWT_KEYS",),
    ),
    "production-placeholders": Case(
        lambda tmp: {
            **PRODUCTION,
            "JWT_KEYS": "changeme",
            "REDIS_PASSWORD": "changethis",
            "DATABASE_PASSWORD": "secret",
        },
        {
            "JWT_KEYS": "placeholder",
            "REDIS_PASSWORD": "placeholder",
            "DATABASE_PASSWORD": "placeholder",
        },
    ),
    "production-short-hmac": Case(
        lambda tmp: {**PRODUCTION, "JWT_KEYS": "only-twenty-one-byte"},
        {"JWT_KEYS": "shorter than 32 bytes"},
        secret_values=["only-twenty-one-byte"],
    ),
    "production-small-rsa": Case(
        lambda tmp: {**PRODUCTION, "JWT_KEYS": _weak_rsa_ring()}, {"JWT_KEYS": "2048"}
    ),
    "production-low-entropy-hmac": Case(
        lambda tmp: {**PRODUCTION, "JWT_KEYS": "a" * 45},
        {"JWT_KEYS": "too little entropy"},
        secret_values=["a" * 45],
    ),
    "production-weak-metrics-token": Case(
        lambda tmp: {**PRODUCTION, "METRICS_TOKEN": "short-token-123"},
        {"METRICS_TOKEN": "shorter than 32"},
        secret_values=["short-token-123"],
    ),
    "production-low-entropy-metrics-token": Case(
        lambda tmp: {**PRODUCTION, "METRICS_TOKEN": "ab" * 20},
        {"METRICS_TOKEN": "too little entropy"},
        secret_values=["ab" * 20],
    ),
    "production-data-keys-missing": Case(
        lambda tmp: dict(PRODUCTION),
        {"DATA_KEYS": "is required in production but not set"},
        remove=("DATA_KEYS",),
    ),
    "data-keys-not-a-ring": Case(
        lambda tmp: {"DATA_KEYS": "data-keys-" + "d" * 40},
        {"DATA_KEYS": "not valid JSON"},
        secret_values=["data-keys-" + "d" * 40],
    ),
    "data-keys-128-bit-key": Case(
        lambda tmp: {"DATA_KEYS": _data_ring(secrets.token_bytes(16))},
        {"DATA_KEYS": "exactly 256 bits"},
    ),
    "production-typed-data-key": Case(
        lambda tmp: {**PRODUCTION, "DATA_KEYS": _data_ring(b"typed-by-hand-not-random-32bytes")},
        {"DATA_KEYS": "printable text"},
    ),
    "production-template-claims": Case(
        lambda tmp: {"APP_ENV": "production", "JWT_ISSUER": "app"},
        {"JWT_ISSUER": "(from env)", "JWT_AUDIENCE": "(from default)"},
    ),
    "smtp-user-without-password": Case(
        lambda tmp: {"SMTP_URL": "smtp://mailer@mail.example.internal:587"},
        {"SMTP_PASSWORD": "SMTP_URL names a user"},
    ),
    "smtp-password-in-url": Case(
        lambda tmp: {"SMTP_URL": "smtp://mailer:url-pw-leak-123@mail.example.internal"},
        {"SMTP_URL": "(from env)"},
        secret_values=["url-pw-leak-123"],
    ),
    "invalid-settings": Case(
        lambda tmp: {"PORT": "eighty", "APP_ENV": "staging"},
        {"PORT": "(from env)", "APP_ENV": "(from env)"},
        secret_values=["eighty", "staging"],
    ),
}


def _escaping_link(tmp: Path) -> dict[str, str]:
    outside = _write(tmp / "outside" / "jwt_keys", "escaped-" + "e" * 40)
    mount = tmp / "mount"
    mount.mkdir()
    (mount / "jwt_keys").symlink_to(outside)
    return {"SECRETS_DIR": str(mount)}


def _key_material(ring: str) -> list[str]:
    """The `k` members of a DATA_KEYS value (what must never be printed)."""
    try:
        return [key["k"] for key in json.loads(ring)["keys"] if key.get("k")]
    except (ValueError, KeyError, TypeError):
        return []


@pytest.mark.parametrize("name", list(CASES))
def test_startup_fails_fast_with_one_line_per_problem(
    name: str, tmp_path: Path, database_url: str
) -> None:
    case = CASES[name]
    env = base_env(
        DATABASE_URL=database_url,
        REDIS_URL=TEST_REDIS_URL,
        JWT_KEYS=GOOD_KEY,
        DATA_KEYS=GOOD_DATA_KEYS,
        PORT="0",
    )
    env.update(case.prepare(tmp_path))
    for key in case.remove:
        env.pop(key, None)
    secret_values = [
        *case.secret_values,
        *(
            v
            for k, v in env.items()
            if k in {"JWT_KEYS", "REDIS_PASSWORD", "DATABASE_PASSWORD"} and v
        ),
        *_key_material(env.get("DATA_KEYS", "")),
    ]
    # Both commands at once, so the suite stays quick. The budget is generous (a loaded 2-core
    # machine must not fail it) yet far below any network timeout a hang would mean.
    started = time.monotonic()
    processes = {
        command: subprocess.Popen(
            [sys.executable, "-m", "app", *command.split()],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in ("serve", "config check")
    }
    for command, process in processes.items():
        try:
            stdout, stderr = process.communicate(
                timeout=STARTUP_BUDGET - (time.monotonic() - started) + 0.5
            )
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            pytest.fail(f"{command} did not exit within {STARTUP_BUDGET} s")
        elapsed = time.monotonic() - started
        assert process.returncode != 0, f"{command} accepted {name}:\n{stdout}{stderr}"
        assert elapsed < STARTUP_BUDGET, f"{command} took {elapsed:.1f}s"
        lines = [line for line in stderr.splitlines() if line.startswith("config error: ")]
        assert len(lines) == len(case.expected), f"{command}: {stderr}"
        for setting, text in case.expected.items():
            mine = [line for line in lines if line.startswith(f"config error: {setting} ")]
            assert len(mine) == 1, f"{command}: no single line for {setting}: {stderr}"
            assert text in mine[0], f"{command}: {mine[0]!r} lacks {text!r}"
        assert "Traceback" not in stdout + stderr
        for value in secret_values:
            if not is_placeholder(value):  # "secret" may well appear in any output
                assert value not in stdout + stderr, f"{command} printed a value"
