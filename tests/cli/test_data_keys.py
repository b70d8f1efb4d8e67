"""`keys generate|rotate|retire --alg A256GCM` and `data reencrypt` (SPEC sections 5 and 7), as
real processes on the test database: a rotation adds a key (0600, envelope-wrapped when the ring
is), re-encryption moves every old value to the current key (idempotent, resumable, reporting
what it cannot open), and retiring refuses a key that still seals a value."""

from __future__ import annotations

import json
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from app.keys.data import DataKeyRing, field_context, new_data_jwk
from tests.keys.test_kms_aws import new_kms_key
from tests.support.cloud.moto import MotoServer, moto_server
from tests.support.server import run_cli
from tests.support.services import asyncpg_dsn
from tests.support.terminal import on_a_terminal

SEEDS = [f"SEED{index:02d}AAAAAAAAAAAAAAAAAAAAAAAAAAAA" for index in range(5)]


@pytest.fixture
def ring_file(tmp_path: Path) -> Path:
    return tmp_path / "data_keys.json"


@pytest.fixture
def env(server_env: dict[str, str], ring_file: Path) -> dict[str, str]:
    """The service's environment, with DATA_KEYS read from the ring file."""
    return {
        **{k: v for k, v in server_env.items() if k != "DATA_KEYS"},
        "DATA_KEYS_FILE": str(ring_file),
    }


def ring(path: Path) -> DataKeyRing:
    return DataKeyRing.parse(path.read_text())


def kids(path: Path) -> list[str]:
    return [key["kid"] for key in json.loads(path.read_text())["keys"]]


async def seal_users(database_url: str, path: Path, seeds: list[str]) -> list[uuid.UUID]:
    """Users with MFA on whose seeds are sealed under the ring's current key."""
    current = ring(path)
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    ids = []
    try:
        for seed in seeds:
            user_id = uuid.uuid4()
            sealed = current.seal(seed.encode(), field_context("users", "mfa_secret", user_id))
            await connection.execute(
                "INSERT INTO users (id, email, password_hash, mfa_secret, mfa_enabled) "
                "VALUES ($1, $2, 'x', $3, true)",
                user_id,
                f"d-{user_id.hex[:10]}@example.com",
                sealed.text,
            )
            ids.append(user_id)
    finally:
        await connection.close()
    return ids


async def stored(database_url: str) -> dict[uuid.UUID, str]:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await connection.fetch(
            "SELECT id, mfa_secret FROM users WHERE mfa_secret IS NOT NULL"
        )
    finally:
        await connection.close()
    return {row["id"]: row["mfa_secret"] for row in rows}


def test_generate_prints_a_data_key(server_env: dict[str, str]) -> None:
    result = run_cli("keys", "generate", "--alg", "A256GCM", env=server_env)
    assert result.returncode == 0, result.stderr
    jwk = json.loads(result.stdout)
    assert (jwk["kty"], jwk["alg"], jwk["use"]) == ("oct", "A256GCM", "enc")
    assert DataKeyRing.parse(json.dumps({"keys": [jwk]})).weak_key_problems() == []


def test_rotate_adds_a_key_in_front_and_leaves_the_file_owner_only(
    env: dict[str, str], ring_file: Path
) -> None:
    first = run_cli("keys", "rotate", "--file", str(ring_file), "--alg", "A256GCM", env=env)
    assert first.returncode == 0, first.stderr
    assert stat.S_IMODE(ring_file.stat().st_mode) == 0o600
    ring_file.chmod(0o644)
    second = run_cli(
        "keys", "rotate", "--file", str(ring_file), "--alg", "A256GCM", "--activate-in", "60",
        env=env,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert stat.S_IMODE(ring_file.stat().st_mode) == 0o600
    listed = kids(ring_file)
    assert len(listed) == 2
    assert f"added data key {listed[0]} (A256GCM)" in second.stdout
    # The new key starts encrypting in a minute; until then the first one still does.
    current = ring(ring_file).encrypting_key()
    assert current is not None
    assert current.kid == listed[1]
    for key in json.loads(ring_file.read_text())["keys"]:
        assert key["k"] not in first.stdout + first.stderr + second.stdout + second.stderr


def test_rotate_refuses_mixing_rings(env: dict[str, str], ring_file: Path, tmp_path: Path) -> None:
    assert (
        run_cli("keys", "rotate", "--file", str(ring_file), "--alg", "A256GCM", env=env).returncode
        == 0
    )
    mixed = run_cli("keys", "rotate", "--file", str(ring_file), "--alg", "HS256", env=env)
    assert mixed.returncode == 1
    jwt_ring = tmp_path / "jwt.json"
    assert run_cli("keys", "rotate", "--file", str(jwt_ring), env=env).returncode == 0
    wrong = run_cli("keys", "rotate", "--file", str(jwt_ring), "--alg", "A256GCM", env=env)
    assert wrong.returncode == 1
    assert "JWT signing keys" in wrong.stderr
    kms_on_jwt = run_cli("keys", "rotate", "--file", str(jwt_ring), "--kms", "aws-kms://x", env=env)
    assert kms_on_jwt.returncode == 1
    assert "--alg A256GCM" in kms_on_jwt.stderr


async def test_reencrypt_moves_every_value_to_the_new_key_and_retire_waits_for_it(
    env: dict[str, str], ring_file: Path, database_url: str
) -> None:
    assert (
        run_cli("keys", "rotate", "--file", str(ring_file), "--alg", "A256GCM", env=env).returncode
        == 0
    )
    old_kid = kids(ring_file)[0]
    ids = await seal_users(database_url, ring_file, SEEDS)
    assert (
        run_cli("keys", "rotate", "--file", str(ring_file), "--alg", "A256GCM", env=env).returncode
        == 0
    )
    new_kid = kids(ring_file)[0]

    early = run_cli("keys", "retire", "--file", str(ring_file), "--keep-seconds", "0", env=env)
    assert early.returncode == 1
    assert f"{old_kid} (5 value(s))" in early.stderr
    assert "data reencrypt" in early.stderr
    assert kids(ring_file) == [new_kid, old_kid]  # nothing retired

    done = run_cli("data", "reencrypt", "--batch-size", "2", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"re-encrypted 5 value(s) under {new_kid}" in done.stdout
    assert f"current key {new_kid}; 5 value(s) under older keys" in done.stderr
    after = await stored(database_url)
    keys = ring(ring_file)
    for user_id, seed in zip(ids, SEEDS, strict=True):
        assert after[user_id].startswith(f"v1.{new_kid}.")
        assert (
            keys.open(after[user_id], field_context("users", "mfa_secret", user_id))
            == seed.encode()
        )
        assert seed not in done.stdout + done.stderr

    again = run_cli("data", "reencrypt", env=env)  # idempotent: nothing left to do
    assert again.returncode == 0, again.stderr
    assert "re-encrypted 0 value(s)" in again.stdout
    assert await stored(database_url) == after

    retired = run_cli("keys", "retire", "--file", str(ring_file), "--keep-seconds", "0", env=env)
    assert retired.returncode == 0, retired.stderr
    assert f"retired 1 data key(s): {old_kid}" in retired.stdout
    assert kids(ring_file) == [new_kid]
    assert stat.S_IMODE(ring_file.stat().st_mode) == 0o600
    nothing = run_cli("keys", "retire", "--file", str(ring_file), "--keep-seconds", "0", env=env)
    assert "nothing to retire" in nothing.stdout


async def test_reencrypt_reports_values_it_cannot_open_and_finishes_the_rest(
    env: dict[str, str], ring_file: Path, database_url: str
) -> None:
    lost = {"keys": [new_data_jwk()]}
    ring_file.write_text(json.dumps(lost))
    orphans = await seal_users(database_url, ring_file, SEEDS[:1])  # under a key about to vanish
    assert (
        run_cli("keys", "rotate", "--file", str(ring_file), "--alg", "A256GCM", env=env).returncode
        == 0
    )
    kept = await seal_users(database_url, ring_file, SEEDS[1:3])
    assert (
        run_cli("keys", "rotate", "--file", str(ring_file), "--alg", "A256GCM", env=env).returncode
        == 0
    )
    document = json.loads(ring_file.read_text())
    document["keys"] = [k for k in document["keys"] if k["kid"] != lost["keys"][0]["kid"]]
    ring_file.write_text(json.dumps(document))

    result = run_cli("data", "reencrypt", env=env)
    assert result.returncode == 1
    assert "1 value(s) could not be opened (users.mfa_secret: 1)" in result.stderr
    assert "re-encrypted 2 value(s)" in result.stdout
    after = await stored(database_url)
    assert after[orphans[0]].startswith(f"v1.{lost['keys'][0]['kid']}.")  # left as it was
    assert all(after[user_id].startswith(f"v1.{kids(ring_file)[0]}.") for user_id in kept)


def test_reencrypt_refuses_a_generated_ring(server_env: dict[str, str]) -> None:
    env = {k: v for k, v in server_env.items() if k != "DATA_KEYS"}
    result = run_cli("data", "reencrypt", env=env)
    assert result.returncode == 1
    assert "DATA_KEYS is not configured" in result.stderr
    assert run_cli("data", "reencrypt", "--batch-size", "0", env=server_env).returncode == 1


# ---- the envelope form (aws-kms through a real moto server) ---------------------------------


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("moto-cli")) as server:
        yield server


async def test_an_envelope_ring_rotates_with_encrypt_only_and_reencrypts_with_decrypt(
    env: dict[str, str], ring_file: Path, moto: MotoServer, database_url: str
) -> None:
    _, alias = new_kms_key(moto)
    reference = f"aws-kms://{alias}"
    rotator = {**env, **moto.env(moto.user_allowed("kms:Encrypt"))}
    service = {**env, **moto.env(moto.user_allowed("kms:Decrypt"))}
    started = run_cli(
        "keys", "rotate", "--file", str(ring_file), "--alg", "A256GCM", "--kms", reference,
        env=rotator,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    assert "wrapped by aws-kms" in started.stdout
    document = json.loads(ring_file.read_text())
    assert document["kms"] == reference
    assert all("k" not in key and key["wrapped_k"] for key in document["keys"])
    # The service unwraps (kms:Decrypt) when it parses DATA_KEYS; seal a value the same way.
    from app.keys.kms import parse_data_keys_blocking

    with pytest.MonkeyPatch.context() as patch:
        for name, value in moto.env(moto.user_allowed("kms:Decrypt")).items():
            patch.setenv(name, value)
        unwrapped = parse_data_keys_blocking(ring_file.read_text())
    user_id = uuid.uuid4()
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await connection.execute(
            "INSERT INTO users (id, email, password_hash, mfa_secret, mfa_enabled) "
            "VALUES ($1, $2, 'x', $3, true)",
            user_id,
            f"e-{user_id.hex[:10]}@example.com",
            unwrapped.seal(b"ENVELOPESEED", field_context("users", "mfa_secret", user_id)).text,
        )
    finally:
        await connection.close()
    rotated = run_cli("keys", "rotate", "--file", str(ring_file), "--alg", "A256GCM", env=rotator)
    assert rotated.returncode == 0, rotated.stderr
    assert len(json.loads(ring_file.read_text())["keys"]) == 2
    other = run_cli(
        "keys", "rotate", "--file", str(ring_file), "--alg", "A256GCM", "--kms", "aws-kms://alias/other",
        env=rotator,
    )  # fmt: skip
    assert other.returncode == 1
    # Re-encrypting needs the service's identity (it unwraps); the rotator's cannot.
    denied = run_cli("data", "reencrypt", env=rotator)
    assert denied.returncode == 1
    assert "DATA_KEYS" in denied.stderr
    assert "access denied" in denied.stderr
    done = run_cli("data", "reencrypt", env=service)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "re-encrypted 1 value(s)" in done.stdout
    retired = run_cli(
        "keys", "retire", "--file", str(ring_file), "--keep-seconds", "0", env=rotator
    )
    assert retired.returncode == 0, retired.stderr
    assert len(json.loads(ring_file.read_text())["keys"]) == 1


async def test_reencrypt_shows_a_progress_bar_on_a_terminal(
    env: dict[str, str], ring_file: Path, database_url: str
) -> None:
    assert (
        run_cli("keys", "rotate", "--file", str(ring_file), "--alg", "A256GCM", env=env).returncode
        == 0
    )
    await seal_users(database_url, ring_file, SEEDS)
    assert (
        run_cli("keys", "rotate", "--file", str(ring_file), "--alg", "A256GCM", env=env).returncode
        == 0
    )
    status, output = on_a_terminal(env, "data", "reencrypt", "--batch-size", "1")
    assert status == 0, output
    assert "re-encrypting" in output
    assert "5/5" in output  # the bar's count, drawn on the terminal
    assert "re-encrypted 5 value(s)" in output
    assert not any(seed in output for seed in SEEDS)


def test_rotate_ref_adds_a_data_key_to_a_secret_manager_ring(
    server_env: dict[str, str], moto: MotoServer
) -> None:
    first = new_data_jwk()
    name = f"app/data-keys-{uuid.uuid4().hex[:8]}"
    client = moto.client("secretsmanager")
    client.create_secret(Name=name, SecretString=json.dumps({"keys": [first]}))
    rotator = {
        **server_env,
        **moto.env(
            moto.user_allowed(
                "secretsmanager:GetSecretValue",
                "secretsmanager:PutSecretValue",
                "secretsmanager:DescribeSecret",
            )
        ),
    }
    result = run_cli("keys", "rotate", "--ref", f"aws-sm://{name}", "--alg", "A256GCM", env=rotator)
    assert result.returncode == 0, result.stderr
    ring = json.loads(client.get_secret_value(SecretId=name)["SecretString"])["keys"]
    assert [key["kid"] for key in ring][1:] == [first["kid"]]
    assert f"added data key {ring[0]['kid']} (A256GCM)" in result.stdout
    for key in ring:
        assert key["k"] not in result.stdout + result.stderr
