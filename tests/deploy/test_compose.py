"""docker-compose.yml: valid against the Compose spec, every secret from ./secrets/ files through
the top-level `secrets:` key, none in `environment:`, health-gated startup order."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import ROOT, check_jsonschema

COMPOSE = ROOT / "docker-compose.yml"
#: Secret file -> the services that must receive it.
NEEDS = {
    "database_password": {"db", "migrate", "app"},
    "redis_password": {"redis", "migrate", "app"},
    "jwt_keys": {"migrate", "app"},
    "metrics_token": {"migrate", "app"},
    "data_keys": {"migrate", "app"},
}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|JWT_KEYS|CREDENTIALS|PRIVATE", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _secret_names(service: dict[str, Any]) -> set[str]:
    return {s if isinstance(s, str) else s["source"] for s in service.get("secrets", [])}


def test_validates_against_the_compose_spec() -> None:
    result = check_jsonschema("vendor.compose-spec", COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_an_invalid_file(tmp_path: Path) -> None:
    bad = tmp_path / "docker-compose.yml"
    bad.write_text("services:\n  app:\n    image: x\n    depends_on: {db: {condition: maybe}}\n")
    assert check_jsonschema("vendor.compose-spec", bad).returncode != 0


def test_secrets_come_from_files_in_the_secrets_dir(compose: dict[str, Any]) -> None:
    declared = compose["secrets"]
    assert set(declared) == set(NEEDS)
    for name, spec in declared.items():
        assert spec == {"file": f"./secrets/{name}"}, name
    for name, services in NEEDS.items():
        for service in services:
            assert name in _secret_names(compose["services"][service]), f"{service} lacks {name}"


def test_no_secret_value_in_any_environment(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        env = service.get("environment", {})
        assert isinstance(env, dict), f"{name}: use the mapping form"
        for key, value in env.items():
            if SECRET_NAME.search(key):
                # Only pointers to the mounted files are allowed.
                assert key.endswith("_FILE"), f"{name}.{key} carries a secret value"
                assert str(value).startswith("/run/secrets/"), f"{name}.{key}={value}"
    raw = COMPOSE.read_text()
    for secret_file in (ROOT / "secrets").glob("*") if (ROOT / "secrets").is_dir() else []:
        value = secret_file.read_text().strip()
        assert not value or value not in raw, f"the value of {secret_file.name} is in the file"


def test_urls_carry_no_password(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in service.get("environment", {}).items():
            if "://" in str(value):
                userinfo = str(value).split("://", 1)[1].split("@", 1)
                if len(userinfo) == 2:
                    assert ":" not in userinfo[0], f"{name}.{key} embeds a password"


def test_postgres_reads_its_password_from_the_secret_file(compose: dict[str, Any]) -> None:
    db = compose["services"]["db"]
    assert db["image"].startswith("postgres:")
    assert db["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/database_password"
    assert "POSTGRES_PASSWORD" not in db["environment"]


def test_redis_password_comes_from_the_secret_file_via_the_wrapper(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert redis["entrypoint"] == ["sh", "/usr/local/bin/redis-start"]
    assert "./docker/redis-start.sh:/usr/local/bin/redis-start:ro" in redis["volumes"]
    assert redis["environment"]["REDIS_PASSWORD_FILE"] == "/run/secrets/redis_password"
    for part in (*redis.get("command", []), *redis["entrypoint"]):
        assert "requirepass" not in str(part)


def test_every_service_has_a_healthcheck_or_is_one_shot(compose: dict[str, Any]) -> None:
    for name in ("db", "redis", "app"):
        check = compose["services"][name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert len(check["test"]) > 1, name
    assert compose["services"]["migrate"]["restart"] == "no"
    assert compose["services"]["migrate"]["command"] == ["migrate"]


def test_app_starts_after_healthy_dependencies_and_a_completed_migration(
    compose: dict[str, Any],
) -> None:
    depends = compose["services"]["app"]["depends_on"]
    assert depends["db"]["condition"] == "service_healthy"
    assert depends["redis"]["condition"] == "service_healthy"
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert compose["services"]["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"


def test_app_container_is_locked_down_and_served_on_localhost(compose: dict[str, Any]) -> None:
    app = compose["services"]["app"]
    assert app["command"] == ["serve"]
    # Published on loopback only; APP_PORT moves it (the compose smoke uses a free port).
    assert app["ports"] == ["127.0.0.1:${APP_PORT:-8000}:8000"]
    assert app["read_only"] is True
    assert app["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in app["security_opt"]
    assert app["environment"]["APP_ENV"] == "development"  # /docs on, locally
    assert app["environment"]["DATABASE_URL"] == "postgresql+asyncpg://app@db:5432/app"
    assert app["user"] == "${APP_UID:-10001}:${APP_GID:-10001}"


def _recipe(target: str) -> str:
    makefile = (ROOT / "Makefile").read_text()
    block = makefile[makefile.index(f"\n{target}:") :].split("\n\n", 1)[0]
    return block.split("\n", 2)[2]  # after the `target: ## ...` line


def test_make_up_builds_then_creates_secrets_inside_the_image_then_starts_compose() -> None:
    """`make up` needs only Docker on the host: `secrets init` runs in the built app image, as
    the invoking user, into ./secrets; then compose starts."""
    recipe = _recipe("up")
    build = recipe.index("$(COMPOSE) build")
    init = recipe.index("secrets init --dir /secrets")
    start = recipe.index("$(COMPOSE) up")
    assert build < init < start
    assert '--user "$(APP_UID):$(APP_GID)"' in recipe
    assert '-v "$(CURDIR)/secrets:/secrets" $(APP_IMAGE)' in recipe
    assert "python3" not in recipe
    assert "devfiles" not in recipe


def test_compose_commands_run_the_app_as_the_owner_of_the_secret_files() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "export APP_UID ?= $(shell id -u)" in makefile
    assert "export APP_GID ?= $(shell id -g)" in makefile
    assert "export APP_IMAGE ?= fastapi-secrets-template:dev" in makefile


@pytest.mark.parametrize(
    ("documented", "target"),
    [
        ("make config-check", "config-check"),
        ("make keys-rotate", "keys-rotate"),
        ("make keys-retire", "keys-retire"),
        ("make db-password-rotate", "db-password-rotate"),
        ("make redis-password-rotate", "redis-password-rotate"),
        ("make compose-smoke", "compose-smoke"),
    ],
)
def test_every_documented_compose_command_is_a_make_target(documented: str, target: str) -> None:
    assert documented in (ROOT / "docs" / "deploy.md").read_text()
    assert f"\n{target}:" in (ROOT / "Makefile").read_text()


def test_docs_run_no_bare_compose_command_that_needs_app_uid() -> None:
    """Defect 1 of issue 15: `docker compose run ... app ...` without APP_UID/APP_GID runs as
    10001, which cannot read the 0600 secret files. The docs go through make instead."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    commands = re.findall(r"`([^`\n]*docker compose (?:run|up|exec|create)\b[^`\n]*)`", text)
    assert commands, "the docs show compose commands"
    for command in commands:
        words = command.split("docker compose ", 1)[1].split()
        if words[0] == "up":
            assert "APP_UID" in command, command
            continue
        rest, service = iter(words[1:]), None
        for word in rest:
            if word in ("-v", "-e", "-u", "-w", "--user", "--entrypoint", "--volume"):
                next(rest, None)  # the option's value
            elif not word.startswith("-"):
                service = word
                break
        if service in ("app", "migrate"):
            assert "APP_UID" in command, command


def test_the_image_tag_is_one_the_makefile_knows(compose: dict[str, Any]) -> None:
    image = compose["services"]["app"]["image"]
    assert image == "${APP_IMAGE:-fastapi-secrets-template:dev}"
    assert compose["services"]["migrate"]["image"] == image


def test_no_project_name_so_each_checkout_has_its_own_volumes() -> None:
    assert not re.search(r"^name:", COMPOSE.read_text(), re.M)


def test_postgres_health_is_checked_over_tcp(compose: dict[str, Any]) -> None:
    """The image's init-time server listens on a unix socket only: a socket check passes
    before the server accepts the app's TCP connections (issue 15, defect 3)."""
    test = compose["services"]["db"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "pg_isready"]
    assert "--host=127.0.0.1" in test


def test_every_image_volume_is_named(compose: dict[str, Any]) -> None:
    """postgres and redis declare VOLUMEs; unnamed, each `down` would leave an anonymous one."""
    mounts = {
        name: [v.split(":", 2)[1] for v in service.get("volumes", []) if isinstance(v, str)]
        for name, service in compose["services"].items()
    }
    assert "/var/lib/postgresql/data" in mounts["db"]
    assert "/data" in mounts["redis"]
    assert set(compose["volumes"]) == {"pgdata", "redisdata"}


def test_app_image_is_built_once_and_reused(compose: dict[str, Any]) -> None:
    """`pull_policy: build` rebuilt the image on every `docker compose run`."""
    for name in ("app", "migrate"):
        assert compose["services"][name]["pull_policy"] == "missing", name
