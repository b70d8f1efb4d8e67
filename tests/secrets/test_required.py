"""`SecretSpec.required`: False, True (development generates a missing one) or "production"
(only production requires it; development AND test generate a missing one, with a warning)."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import pytest

from app.config import Settings
from app.secrets import ConfigError, SecretRegistry, SecretSpec, SecretStore
from app.secrets.checks import text
from tests.secrets.helpers import clear_secret_env

GENERATED: list[str] = []


def _generate() -> str:
    value = "generated-" + secrets.token_urlsafe(24)
    GENERATED.append(value)
    return value


ALWAYS = SecretSpec[str](
    name="EXAMPLE_ALWAYS", description="required everywhere", parse=text, required=True,
    generate=_generate,
)  # fmt: skip
IN_PRODUCTION = SecretSpec[str](
    name="EXAMPLE_IN_PRODUCTION", description="required in production only", parse=text,
    required="production", generate=_generate,
)  # fmt: skip
REGISTRY = SecretRegistry(ALWAYS, IN_PRODUCTION)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_secret_env(monkeypatch)


def settings(tmp_path: Path, app_env: str) -> Settings:
    return Settings(_env_file=None, app_env=app_env, secrets_dir=str(tmp_path / "none"))


async def test_development_generates_both_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="app.secrets"):
        store = await SecretStore.open(settings(tmp_path, "development"), REGISTRY)
    try:
        for spec in REGISTRY:
            entry = store.entry(spec.name)
            assert entry is not None
            assert entry.source == "generated"
            assert spec.name in caplog.text
        assert not any(value in caplog.text for value in GENERATED)  # never the value
    finally:
        await store.aclose()


async def test_test_generates_the_production_only_one_and_refuses_the_other(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigError) as raised:
        await SecretStore.open(settings(tmp_path, "test"), REGISTRY)
    assert [p.setting for p in raised.value.problems] == ["EXAMPLE_ALWAYS"]

    only = SecretRegistry(IN_PRODUCTION)
    with caplog.at_level(logging.WARNING, logger="app.secrets"):
        store = await SecretStore.open(settings(tmp_path, "test"), only)
    try:
        entry = store.entry(IN_PRODUCTION.name)
        assert entry is not None
        assert entry.source == "generated"
        assert "EXAMPLE_IN_PRODUCTION is not set: generated a random test value" in caplog.text
    finally:
        await store.aclose()


async def test_production_requires_both_and_generates_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        await SecretStore.open(settings(tmp_path, "production"), SecretRegistry(IN_PRODUCTION))
    (problem,) = raised.value.problems
    assert problem.setting == "EXAMPLE_IN_PRODUCTION"
    assert "is required in production but not set" in problem.message
    assert problem.origin.startswith("searched env EXAMPLE_IN_PRODUCTION")


async def test_a_given_value_is_used_as_is_in_every_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "secrets"
    directory.mkdir()
    (directory / "example_in_production").write_text("from-the-directory\n")
    for app_env in ("development", "test", "production"):
        config = Settings(_env_file=None, app_env=app_env, secrets_dir=str(directory))
        store = await SecretStore.open(config, SecretRegistry(IN_PRODUCTION))
        try:
            entry = store.entry(IN_PRODUCTION.name)
            assert entry is not None
            assert (entry.source, entry.value.get_secret_value()) == ("dir", "from-the-directory")
        finally:
            await store.aclose()


def test_declarations_are_checked() -> None:
    assert IN_PRODUCTION.required_in(production=True)
    assert not IN_PRODUCTION.required_in(production=False)
    assert ALWAYS.required_in(production=False)
    assert [IN_PRODUCTION.generated_in(e) for e in ("development", "test", "production")] == [
        True,
        True,
        False,
    ]
    assert [ALWAYS.generated_in(e) for e in ("development", "test", "production")] == [
        True,
        False,
        False,
    ]
    with pytest.raises(ValueError, match="needs `generate`"):
        SecretSpec[str](name="NO_GEN", description="", parse=text, required="production")
    with pytest.raises(ValueError, match="required must be"):
        SecretSpec[str](name="ODD", description="", parse=text, required="always")  # type: ignore[arg-type]
