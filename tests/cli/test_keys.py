"""`python -m app keys generate | rotate | retire` (SPEC section 5)."""

from __future__ import annotations

import json
import os
import secrets
import stat
import time
from pathlib import Path

import pytest

from app.keys.signing import KeyRing, new_jwk
from tests.support.server import base_env, run_cli


@pytest.fixture
def env() -> dict[str, str]:
    return base_env()


def _ring(path: Path) -> list[dict[str, object]]:
    keys: list[dict[str, object]] = json.loads(path.read_text())["keys"]
    return keys


def test_generate_prints_a_private_eddsa_jwk_by_default(env: dict[str, str]) -> None:
    result = run_cli("keys", "generate", env=env)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["alg"] == "EdDSA"
    assert document["kty"] == "OKP"
    assert document["d"]
    assert document["kid"]
    ring = KeyRing.parse(json.dumps({"keys": [document]}))
    assert ring.signing_key() is not None


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512", "ES256", "RS256"])
def test_generate_each_alg(env: dict[str, str], alg: str) -> None:
    result = run_cli("keys", "generate", "--alg", alg, env=env)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["alg"] == alg
    assert KeyRing.parse(json.dumps({"keys": [document]})).weak_key_problems() == []


def test_rotate_adds_a_key_keeps_the_others_and_leaves_the_file_owner_only(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "ring.json"
    assert run_cli("keys", "rotate", "--file", str(path), env=env).returncode == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = _ring(path)
    os.chmod(path, 0o640)
    before = time.time()
    result = run_cli(
        "keys", "rotate", "--file", str(path), "--alg", "ES256", "--activate-in", "120", env=env
    )
    assert result.returncode == 0, result.stderr
    keys = _ring(path)
    assert len(keys) == 2
    assert keys[1] == first[0]
    assert keys[0]["alg"] == "ES256"
    nbf = keys[0]["nbf"]
    assert isinstance(nbf, int)
    assert before + 118 <= nbf <= time.time() + 121
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "SPEC 5: readable by its owner only"
    assert keys[0]["d"] not in result.stdout + result.stderr  # type: ignore[operator]
    assert list(tmp_path.glob(".ring.json.*")) == [], "no temp file left behind"
    ring = KeyRing.parse(path.read_text())
    assert ring.signing_key() is not None
    assert ring.signing_key().kid == first[0]["kid"]  # type: ignore[union-attr]


def test_rotate_converts_raw_secrets_keeping_their_kids(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "jwt_keys"
    raw = secrets.token_urlsafe(48)
    path.write_text(raw + "\n")
    kid = KeyRing.parse(raw).keys[0].kid
    result = run_cli("keys", "rotate", "--file", str(path), "--alg", "HS512", env=env)
    assert result.returncode == 0, result.stderr
    assert raw not in result.stdout + result.stderr
    ring = KeyRing.parse(path.read_text())
    assert ring.get(kid) is not None
    assert len(ring) == 2


def test_rotate_grows_a_single_generated_jwk_into_a_ring(
    env: dict[str, str], tmp_path: Path
) -> None:
    generated = run_cli("keys", "generate", env=env)
    first = json.loads(generated.stdout)
    path = tmp_path / "jwt_keys"
    path.write_text(generated.stdout)
    result = run_cli("keys", "rotate", "--file", str(path), env=env)
    assert result.returncode == 0, result.stderr
    ring = _ring(path)
    assert len(ring) == 2
    assert first["kid"] in {key["kid"] for key in ring}


def test_unusable_ring_file_is_left_alone_and_material_never_printed(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "ring.json"
    private = json.loads(run_cli("keys", "generate", "--alg", "RS256", env=env).stdout)
    broken = json.dumps({"keys": [{**private, "alg": "HS256"}]})
    path.write_text(broken)
    for args in (
        ["rotate", "--file", str(path)],
        ["retire", "--file", str(path), "--keep-seconds", "0"],
    ):
        result = run_cli("keys", *args, env=env)
        assert result.returncode == 1
        output = result.stdout + result.stderr
        assert private["d"] not in output
        assert private["n"][:32] not in output
        assert str(path) in output
    assert path.read_text() == broken


def test_retire_drops_only_keys_that_stopped_signing_long_enough_ago(
    env: dict[str, str], tmp_path: Path
) -> None:
    now = time.time()
    oldest = new_jwk("EdDSA", now=now - 10_000)
    old = new_jwk("EdDSA", now=now - 5_000)
    current = new_jwk("ES256", now=now - 100)
    upcoming = new_jwk("EdDSA", now=now, activate_in=3_600)
    path = tmp_path / "ring.json"
    path.write_text(json.dumps({"keys": [upcoming, current, old, oldest]}))
    path.chmod(0o644)  # as a careless copy left it
    # `oldest` stopped signing when `old` started (~10000-5000 s ago); `old` stopped ~100 s ago.
    result = run_cli("keys", "retire", "--file", str(path), "--keep-seconds", "1000", env=env)
    assert result.returncode == 0, result.stderr
    assert [k["kid"] for k in _ring(path)] == [upcoming["kid"], current["kid"], old["kid"]]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "SPEC 5: readable by its owner only"
    result = run_cli("keys", "retire", "--file", str(path), "--keep-seconds", "0", env=env)
    assert result.returncode == 0, result.stderr
    # The current signing key is never dropped; the upcoming one has not signed yet.
    assert [k["kid"] for k in _ring(path)] == [upcoming["kid"], current["kid"]]
