"""AWS Secrets Manager through real boto3 against a real `moto_server` process (IAM enforced)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from app.config import SECRETS
from app.secrets import SecretStore
from tests.conftest import SettingsFactory
from tests.secrets.providers.conftest import (
    new_ring,
    open_error,
    rotate_ring,
    signing_follows_rotation_over_http,
    signing_kid,
    wait_for,
)
from tests.support.app import client_for, resources, running_app
from tests.support.cloud.moto import MotoServer, moto_server
from tests.support.server import base_env, free_port, run_cli


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(scope="module")
def app_keys(moto: MotoServer) -> dict[str, str]:
    """The application's role: GetSecretValue and nothing else."""
    return moto.user_allowed("secretsmanager:GetSecretValue")


@pytest.fixture(scope="module")
def rotator_keys(moto: MotoServer) -> dict[str, str]:
    """The rotation job's role: read and write the secret."""
    return moto.user_allowed("secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue")


def act_as(env: pytest.MonkeyPatch, moto: MotoServer, keys: dict[str, str]) -> None:
    """Point the SDK at moto with `keys` (for the test, or for `env`'s context)."""
    for name, value in moto.env(keys).items():
        env.setenv(name, value)


@pytest.fixture
def as_app(moto: MotoServer, app_keys: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    act_as(monkeypatch, moto, app_keys)


def _name() -> str:
    return f"prod/backend-{secrets.token_hex(4)}"


@pytest.mark.usefixtures("as_app")
async def test_reads_by_json_key_and_reports_the_awscurrent_version_id(
    moto: MotoServer, make_settings: SettingsFactory
) -> None:
    admin = moto.client("secretsmanager")
    values = {"jwt_keys": secrets.token_urlsafe(48), "db_password": secrets.token_urlsafe(24)}
    doc = admin.create_secret(Name=_name(), SecretString=json.dumps(values))
    plain_value = secrets.token_urlsafe(24)
    plain = admin.create_secret(Name=_name(), SecretString=plain_value)
    settings = make_settings(
        jwt_keys=f"aws-sm://{doc['Name']}#jwt_keys", redis_password=f"aws-sm://{plain['ARN']}"
    )
    store = await SecretStore.open(settings, SECRETS)
    await store.aclose()

    assert store.get("JWT_KEYS").get_secret_value() == values["jwt_keys"]  # type: ignore[union-attr]
    assert store.get("REDIS_PASSWORD").get_secret_value() == plain_value  # type: ignore[union-attr]
    entry = store.entry("JWT_KEYS")
    assert entry is not None
    assert (entry.source, entry.version) == ("aws-sm", doc["VersionId"])
    assert store.entry("REDIS_PASSWORD").version == plain["VersionId"]  # type: ignore[union-attr]


@pytest.mark.usefixtures("as_app")
async def test_stages_and_version_ids_select_older_versions(
    moto: MotoServer, make_settings: SettingsFactory
) -> None:
    admin = moto.client("secretsmanager")
    old, new = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
    created = admin.create_secret(Name=_name(), SecretString=old)
    admin.put_secret_value(SecretId=created["Name"], SecretString=new)
    name = created["Name"]
    for reference, expected in [
        (f"aws-sm://{name}", new),
        (f"aws-sm://{name}?stage=AWSPREVIOUS", old),
        (f"aws-sm://{name}?version-id={created['VersionId']}", old),
    ]:
        store = await SecretStore.open(make_settings(jwt_keys=reference), SECRETS)
        await store.aclose()
        assert store.get("JWT_KEYS").get_secret_value() == expected, reference  # type: ignore[union-attr]
    bad = await open_error(make_settings(jwt_keys=f"aws-sm://{name}?stag=AWSPREVIOUS"))
    assert "unknown reference option(s) stag" in bad


@pytest.mark.usefixtures("as_app")
async def test_a_new_version_is_served_without_restart(
    moto: MotoServer, make_settings: SettingsFactory
) -> None:
    admin = moto.client("secretsmanager")
    first, second = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
    created = admin.create_secret(Name=_name(), SecretString=json.dumps({"jwt": first}))
    async with running_app(
        make_settings(jwt_keys=f"aws-sm://{created['Name']}#jwt", secrets_refresh_seconds=1)
    ) as app:
        store: SecretStore = resources(app).store
        put = admin.put_secret_value(
            SecretId=created["Name"], SecretString=json.dumps({"jwt": second})
        )
        async with client_for(app) as client:
            await wait_for(lambda: store.get("JWT_KEYS").get_secret_value() == second)  # type: ignore[union-attr]
            assert (await client.get("/health/ready")).status_code == 200
        assert store.entry("JWT_KEYS").version == put["VersionId"]  # type: ignore[union-attr]


async def test_not_found_denied_unreachable_and_no_credentials_are_distinct(
    moto: MotoServer,
    app_keys: dict[str, str],
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hidden = secrets.token_urlsafe(48)
    created = moto.client("secretsmanager").create_secret(Name=_name(), SecretString=hidden)
    reference = f"aws-sm://{created['Name']}"
    weak = moto.user_allowed("secretsmanager:DescribeSecret")
    act_as(monkeypatch, moto, weak)
    denied = await open_error(make_settings(jwt_keys=reference))
    assert f"JWT_KEYS (from JWT_KEYS={reference}): access denied" in denied
    assert "secretsmanager:GetSecretValue" in denied

    act_as(monkeypatch, moto, app_keys)
    missing = await open_error(make_settings(jwt_keys="aws-sm://prod/does-not-exist#jwt"))
    assert "JWT_KEYS (from JWT_KEYS=aws-sm://prod/does-not-exist#jwt): not found" in missing

    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://127.0.0.1:{free_port()}")
    unreachable = await open_error(make_settings(jwt_keys=reference))
    assert "unreachable: cannot reach AWS Secrets Manager" in unreachable

    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.url)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    anonymous = await open_error(make_settings(jwt_keys=reference))
    assert "access denied: no AWS credentials found" in anonymous
    for message in (denied, missing, unreachable, anonymous):
        assert hidden not in message
        assert weak["aws_secret_access_key"] not in message


def test_config_check_shows_provider_reference_and_version_and_fails_clearly(
    moto: MotoServer, app_keys: dict[str, str], database_url: str, redis_url: str
) -> None:
    admin = moto.client("secretsmanager")
    value = secrets.token_urlsafe(48)
    created = admin.create_secret(Name=_name(), SecretString=json.dumps({"jwt": value}))
    env = base_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        JWT_KEYS=f"aws-sm://{created['Name']}#jwt",
        **moto.env(app_keys),
    )
    result = run_cli("config", "check", env=env)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("JWT_KEYS"))
    assert "aws-sm" in row
    assert f"aws-sm://{created['Name']}#jwt" in row
    assert created["VersionId"] in row
    assert value not in result.stdout + result.stderr

    env["JWT_KEYS"] = "aws-sm://prod/missing-secret"
    failed = run_cli("config", "check", env=env)
    assert failed.returncode == 1
    assert "JWT_KEYS (from JWT_KEYS=aws-sm://prod/missing-secret): not found" in failed.stderr


@pytest.mark.usefixtures("as_app")
async def test_rotation_job_writes_a_new_version_with_its_own_write_role(
    moto: MotoServer,
    rotator_keys: dict[str, str],
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = secrets.token_urlsafe(24)
    created = moto.client("secretsmanager").create_secret(
        Name=_name(), SecretString=json.dumps({"jwt_keys": new_ring("HS256"), "other": other})
    )
    reference = f"aws-sm://{created['Name']}#jwt_keys"
    service = await SecretStore.open(make_settings(jwt_keys=reference), SECRETS)
    try:
        old_kid = signing_kid(service)
        # The service's read-only role cannot write...
        refused = await open_error_of(rotate_ring(make_settings(), reference))
        assert "access denied" in refused
        # ...the rotation role can.
        act_as(monkeypatch, moto, rotator_keys)
        new_kid, version = await rotate_ring(make_settings(), reference)
        assert new_kid != old_kid

        assert await service.refresh() == {"JWT_KEYS"}
        assert signing_kid(service) == new_kid
        assert service.entry("JWT_KEYS").version == version  # type: ignore[union-attr]
        stored = json.loads(
            moto.client("secretsmanager").get_secret_value(SecretId=created["Name"])["SecretString"]
        )
        assert stored["other"] == other, "fields other than the ring are kept"
        assert len(json.loads(stored["jwt_keys"])["keys"]) == 2
    finally:
        await service.aclose()


async def open_error_of(job: Any) -> str:
    from app.secrets.errors import SecretFetchError

    with pytest.raises(SecretFetchError) as caught:
        await job
    return f"{caught.value.kind}: {caught.value}"


def test_keys_rotate_ref_cli_writes_with_the_rotation_role_and_never_prints_keys(
    moto: MotoServer, app_keys: dict[str, str], rotator_keys: dict[str, str]
) -> None:
    initial = new_ring("EdDSA")
    created = moto.client("secretsmanager").create_secret(
        Name=_name(), SecretString=json.dumps({"jwt_keys": initial})
    )
    reference = f"aws-sm://{created['Name']}#jwt_keys"
    result = run_cli(
        "keys",
        "rotate",
        "--ref",
        reference,
        "--alg",
        "EdDSA",
        "--activate-in",
        "600",
        env=base_env(**moto.env(rotator_keys)),
    )
    assert result.returncode == 0, result.stderr
    stored = moto.client("secretsmanager").get_secret_value(SecretId=created["Name"])
    ring = json.loads(json.loads(stored["SecretString"])["jwt_keys"])["keys"]
    assert len(ring) == 2
    new_key, old_key = ring
    assert old_key == json.loads(initial)["keys"][0]
    assert new_key["nbf"] >= new_key["iat"] + 600  # verify-only until it activates
    assert f"added key {new_key['kid']}" in result.stdout
    assert f"-> {stored['VersionId']}" in result.stdout
    for key in ring:
        assert key["d"] not in result.stdout + result.stderr

    refused = run_cli("keys", "rotate", "--ref", reference, env=base_env(**moto.env(app_keys)))
    assert refused.returncode == 1
    assert f"keys: {reference}: access denied" in refused.stderr

    not_cloud = run_cli("keys", "rotate", "--ref", "file:///etc/jwt", env=base_env())
    assert not_cloud.returncode == 1
    assert "--ref takes a reference to one of aws-sm://" in not_cloud.stderr


@pytest.mark.usefixtures("as_app")
async def test_rotated_ring_signs_new_tokens_over_http_and_no_request_fails(
    moto: MotoServer,
    rotator_keys: dict[str, str],
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created = moto.client("secretsmanager").create_secret(
        Name=_name(), SecretString=json.dumps({"jwt_keys": new_ring("HS256")})
    )
    reference = f"aws-sm://{created['Name']}#jwt_keys"
    async with running_app(make_settings(jwt_keys=reference, secrets_refresh_seconds=1)) as app:

        async def rotation_job() -> str:
            with monkeypatch.context() as job_env:
                act_as(job_env, moto, rotator_keys)
                new_kid, _ = await rotate_ring(make_settings(), reference)
            return new_kid

        await signing_follows_rotation_over_http(app, rotation_job)


@pytest.mark.usefixtures("as_app")
async def test_debug_logging_never_shows_the_secret_or_its_other_fields(
    moto: MotoServer, make_settings: SettingsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    value, sibling = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
    created = moto.client("secretsmanager").create_secret(
        Name=_name(), SecretString=json.dumps({"jwt": value, "sibling": sibling})
    )
    caplog.set_level(logging.DEBUG)  # as with LOG_LEVEL=debug
    store = await SecretStore.open(
        make_settings(jwt_keys=f"aws-sm://{created['Name']}#jwt"), SECRETS
    )
    await store.aclose()
    assert store.get("JWT_KEYS").get_secret_value() == value  # type: ignore[union-attr]
    assert caplog.records, "debug logging was on"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert value not in logged
    assert sibling not in logged
