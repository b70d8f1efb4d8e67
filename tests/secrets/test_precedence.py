"""SPEC section 2: a secret `X` comes from `X`, else `X_FILE`, else the file `x` in SECRETS_DIR;
setting both `X` and `X_FILE` is an error. Every combination, for every secret setting."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from app.config import SECRETS, Settings
from app.secrets import ConfigError, SecretStore
from tests.secrets.helpers import clear_secret_env, valid_value

COMBINATIONS = list(itertools.product([False, True], repeat=3))  # (env, _FILE, dir)


def expected(env: bool, file: bool, directory: bool) -> str:
    if env and file:
        return "error"
    if env:
        return "env"
    if file:
        return "file"
    if directory:
        return "dir"
    return "unset"


@pytest.mark.parametrize("setting", SECRETS.names())
@pytest.mark.parametrize(
    ("env", "file", "directory"), COMBINATIONS, ids=lambda flag: "on" if flag else "off"
)
async def test_precedence(
    setting: str,
    env: bool,
    file: bool,
    directory: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clear_secret_env(monkeypatch)
    values = {source: valid_value(setting, f"{source}-") for source in ("env", "file", "dir")}
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    monkeypatch.setenv("APP_ENV", "test")
    monkeypatch.setenv("SECRETS_DIR", str(secrets_dir))
    if setting != "JWT_KEYS":
        monkeypatch.setenv("JWT_KEYS", valid_value("JWT_KEYS"))
    if env:
        monkeypatch.setenv(setting, values["env"])
    if file:
        path = tmp_path / "from-file"
        path.write_text(values["file"] + "\n")
        monkeypatch.setenv(f"{setting}_FILE", str(path))
    if directory:
        (secrets_dir / setting.lower()).write_text(values["dir"] + "\n")

    outcome = expected(env, file, directory)
    settings = Settings(_env_file=None)
    if outcome == "error":
        with pytest.raises(ConfigError) as raised:
            await SecretStore.open(settings, SECRETS)
        assert [p.setting for p in raised.value.problems] == [setting]
        assert f"{setting}_FILE" in str(raised.value)
        assert values["env"] not in str(raised.value)
        return
    if outcome == "unset" and setting == "JWT_KEYS":  # the one required secret
        with pytest.raises(ConfigError, match=r"JWT_KEYS.*required"):
            await SecretStore.open(settings, SECRETS)
        return
    store = await SecretStore.open(settings, SECRETS)
    try:
        entry = store.entry(setting)
        spec = SECRETS.get(setting)
        assert spec is not None
        if outcome == "unset" and spec.required == "production":
            # Required in production only: this test process generated one.
            assert entry is not None
            assert entry.source == "generated"
        elif outcome == "unset":
            assert entry is None
        else:
            assert entry is not None
            assert entry.source == outcome
            assert entry.value.get_secret_value() == values[outcome]
    finally:
        await store.aclose()


async def test_later_secrets_dir_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_secret_env(monkeypatch)
    first, second, third = (tmp_path / name for name in ("first", "second", "third"))
    for directory in (first, second, third):
        directory.mkdir()
    (first / "jwt_keys").write_text("first-" + "a" * 40)
    (second / "jwt_keys").write_text("second-" + "b" * 40)
    (first / "redis_password").write_text("only-in-first")
    settings = Settings(_env_file=None, app_env="test", secrets_dir=f"{first}:{second}:{third}")
    store = await SecretStore.open(settings, SECRETS)
    try:
        jwt_keys = store.entry("JWT_KEYS")
        redis_password = store.get("REDIS_PASSWORD")
        assert jwt_keys is not None
        assert jwt_keys.value.get_secret_value() == "second-" + "b" * 40
        assert jwt_keys.origin.endswith(str(second / "jwt_keys"))
        assert redis_password is not None
        assert redis_password.get_secret_value() == "only-in-first"
    finally:
        await store.aclose()


async def test_file_reference_in_the_variable_reads_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_secret_env(monkeypatch)
    target = tmp_path / "db-password"
    target.write_text("from-a-reference\n")
    settings = Settings(
        _env_file=None,
        app_env="test",
        jwt_keys="k" * 40,
        database_password=f"file://{target}",
        secrets_dir=str(tmp_path / "none"),
    )
    store = await SecretStore.open(settings, SECRETS)
    try:
        entry = store.entry("DATABASE_PASSWORD")
        assert entry is not None
        assert entry.source == "file"
        assert entry.value.get_secret_value() == "from-a-reference"
        assert entry.origin == f"DATABASE_PASSWORD=file://{target}"
    finally:
        await store.aclose()
