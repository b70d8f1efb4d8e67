"""One structured audit line per secret load and rotation: setting, source, version, time,
never the value."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from app.config import SECRETS, Settings
from app.observability.audit import secret_event
from app.secrets import SecretStore
from tests.secrets.helpers import clear_secret_env

JWT = "audit-jwt-" + "q" * 40


def audit_events(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    events = []
    for record in caplog.records:
        if record.name == "app.audit":
            line = record.getMessage()
            assert "\n" not in line
            events.append(json.loads(line))
    return events


async def test_load_and_rotation_are_audited_without_values(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_secret_env(monkeypatch)
    password_file = tmp_path / "redis_password"
    password_file.write_text("audit-first-password")
    settings = Settings(
        _env_file=None,
        app_env="test",
        jwt_keys=JWT,
        redis_password_file=password_file,
        secrets_dir=str(tmp_path / "none"),
    )
    with caplog.at_level(logging.INFO, logger="app.audit"):
        store = await SecretStore.open(settings, SECRETS, events=secret_event)
        try:
            loaded = audit_events(caplog)
            caplog.clear()
            password_file.write_text("audit-second-password")
            await store.refresh()
            rotated = audit_events(caplog)
            caplog.clear()
            password_file.write_text("")  # an unusable value: refused, the old one stays
            await store.refresh()
            failed = audit_events(caplog)
        finally:
            await store.aclose()

    by_setting = {event["setting"]: event for event in loaded}
    assert {event["event"] for event in loaded} == {"secret.loaded"}
    # DATA_KEYS is required in production only: this test process generated one.
    assert set(by_setting) == {"JWT_KEYS", "REDIS_PASSWORD", "DATA_KEYS"}
    assert by_setting["DATA_KEYS"]["source"] == "generated"
    assert by_setting["JWT_KEYS"]["source"] == "env"
    assert by_setting["REDIS_PASSWORD"]["source"] == "file"
    assert str(by_setting["REDIS_PASSWORD"]["version"]).startswith("mtime:")
    assert all(isinstance(event["ts"], float | int) for event in loaded)

    assert [(e["event"], e["setting"], e["source"]) for e in rotated] == [
        ("secret.rotated", "REDIS_PASSWORD", "file")
    ]
    assert rotated[0]["version"] != by_setting["REDIS_PASSWORD"]["version"]
    assert rotated[0]["previous_version"] == by_setting["REDIS_PASSWORD"]["version"]

    assert [(e["event"], e["setting"]) for e in failed] == [
        ("secret.refresh_failed", "REDIS_PASSWORD")
    ]

    text = json.dumps(loaded + rotated + failed)
    for secret in (JWT, "audit-first-password", "audit-second-password"):
        assert secret not in text
