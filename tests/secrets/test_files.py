"""File sources: `X_FILE` and SECRETS_DIR files, their newline rule, symlink containment, and
pickup of a changed file by the running store (no restart)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import pytest

from app.config import SECRETS, Settings
from app.secrets import ConfigError, SecretStore
from tests.secrets.helpers import clear_secret_env

JWT = "j" * 48


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_secret_env(monkeypatch)


def make(tmp_path: Path, **values: object) -> Settings:
    defaults: dict[str, object] = {
        "app_env": "test",
        "secrets_dir": str(tmp_path / "nodir"),
        "secrets_refresh_seconds": 1,
    }
    return Settings(_env_file=None, **{**defaults, **values})


async def wait_for(predicate: object, timeout: float) -> float:
    """Seconds until `predicate()` holds; fails after `timeout`."""
    assert callable(predicate)
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


@pytest.mark.parametrize(
    ("content", "value"),
    [
        ("value\n", "value"),
        ("value\n\n", "value\n"),
        ("value  \n", "value  "),
        ("  value", "  value"),
        ("value", "value"),
        ("value\r\n", "value"),
        ("line one\nline two\n", "line one\nline two"),
    ],
)
async def test_only_one_trailing_newline_is_stripped(
    tmp_path: Path, content: str, value: str
) -> None:
    path = tmp_path / "redis_password"
    path.write_bytes(content.encode())
    store = await SecretStore.open(make(tmp_path, jwt_keys=JWT, redis_password_file=path), SECRETS)
    try:
        secret = store.get("REDIS_PASSWORD")
        assert secret is not None
        assert secret.get_secret_value() == value
    finally:
        await store.aclose()


async def test_symlink_inside_the_secrets_dir_is_followed(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "mount"
    (secrets_dir / "real").mkdir(parents=True)
    (secrets_dir / "real" / "jwt_keys").write_text(JWT)
    (secrets_dir / "jwt_keys").symlink_to("real/jwt_keys")
    store = await SecretStore.open(make(tmp_path, secrets_dir=str(secrets_dir)), SECRETS)
    try:
        assert store.get("JWT_KEYS") is not None
    finally:
        await store.aclose()


@pytest.mark.parametrize("absolute", [True, False], ids=["absolute-link", "dot-dot-link"])
async def test_symlink_leaving_the_secrets_dir_is_refused(tmp_path: Path, absolute: bool) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "jwt_keys").write_text("stolen-" + JWT)
    secrets_dir = tmp_path / "mount"
    secrets_dir.mkdir()
    target = outside / "jwt_keys" if absolute else Path("../outside/jwt_keys")
    (secrets_dir / "jwt_keys").symlink_to(target)
    with pytest.raises(ConfigError) as raised:
        await SecretStore.open(make(tmp_path, secrets_dir=str(secrets_dir)), SECRETS)
    message = str(raised.value)
    assert [p.setting for p in raised.value.problems] == ["JWT_KEYS"]
    assert "leaving" in message
    assert "stolen" not in message


async def test_link_that_starts_escaping_after_startup_keeps_the_last_good_value(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secrets_dir = tmp_path / "mount"
    secrets_dir.mkdir()
    (secrets_dir / "data").mkdir()
    (secrets_dir / "data" / "jwt_keys").write_text("good-" + JWT)
    (secrets_dir / "jwt_keys").symlink_to("data/jwt_keys")
    (tmp_path / "evil").write_text("evil-" + JWT)
    store = await SecretStore.open(make(tmp_path, secrets_dir=str(secrets_dir)), SECRETS)
    try:
        (secrets_dir / "tmp-link").symlink_to(tmp_path / "evil")
        os.replace(secrets_dir / "tmp-link", secrets_dir / "jwt_keys")
        with caplog.at_level(logging.WARNING, logger="app.secrets"):
            await store.refresh()
        value = store.get("JWT_KEYS")
        assert value is not None
        assert value.get_secret_value() == "good-" + JWT
        warnings = [r.getMessage() for r in caplog.records if r.name == "app.secrets"]
        assert any("JWT_KEYS" in w and "keeping the last good value" in w for w in warnings)
        assert not any("evil" in w or "good-" in w for w in warnings)
    finally:
        await store.aclose()


async def test_rename_over_the_file_is_served_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "redis_password"
    path.write_text("before-rotation\n")
    store = await SecretStore.open(make(tmp_path, jwt_keys=JWT, redis_password_file=path), SECRETS)
    store.start()
    try:
        staged = tmp_path / ".redis_password.new"
        staged.write_text("after-rotation\n")
        os.replace(staged, path)

        def rotated() -> bool:
            secret = store.get("REDIS_PASSWORD")
            return secret is not None and secret.get_secret_value() == "after-rotation"

        await wait_for(rotated, timeout=1 + 1)  # SECRETS_REFRESH_SECONDS + 1 s
    finally:
        await store.aclose()


async def test_in_place_rewrite_is_served_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "database_password"
    path.write_text("first-password")
    settings = make(
        tmp_path, jwt_keys=JWT, database_password_file=path, secrets_refresh_seconds=30
    )  # the change itself triggers the reload
    store = await SecretStore.open(settings, SECRETS)
    store.start()
    try:
        path.write_text("second-password-longer")

        def rotated() -> bool:
            secret = store.get("DATABASE_PASSWORD")
            return secret is not None and secret.get_secret_value() == "second-password-longer"

        await wait_for(rotated, timeout=3)
    finally:
        await store.aclose()


async def test_failed_refresh_keeps_serving_the_last_good_value(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "database_password"
    path.write_text("last-good-password")
    store = await SecretStore.open(
        make(tmp_path, jwt_keys=JWT, database_password_file=path), SECRETS
    )
    try:
        for breakage in ("deleted", "emptied"):
            if breakage == "deleted":
                path.unlink()
            else:
                path.write_text("")
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="app.secrets"):
                changed = await store.refresh()
            assert changed == frozenset()
            secret = store.get("DATABASE_PASSWORD")
            assert secret is not None
            assert secret.get_secret_value() == "last-good-password"
            lines = [r.getMessage() for r in caplog.records]
            assert any("DATABASE_PASSWORD" in line for line in lines), breakage
            assert not any("last-good-password" in line for line in lines)
    finally:
        await store.aclose()
