"""`DATABASE_PASSWORD=aws-rds-iam://`: RDS IAM auth tokens computed locally by boto3, as a
leased value the store renews at half-life (no AWS call on the request path)."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlsplit

import pytest

from app.config import SECRETS
from app.main import create_app
from app.secrets import SecretStore
from tests.conftest import SettingsFactory
from tests.secrets.providers.conftest import open_error
from tests.support.app import client_for, lifespan, resources


@pytest.fixture
def aws_identity(monkeypatch: pytest.MonkeyPatch) -> str:
    key_id = "AKIA" + secrets.token_hex(8).upper()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secrets.token_urlsafe(30))
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    return key_id


def _token_parts(token: str) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit("https://" + token)
    return parts.netloc, parse_qs(parts.query)


async def test_a_token_for_the_database_url_user_is_a_15_minute_lease(
    aws_identity: str, make_settings: SettingsFactory
) -> None:
    app = create_app(make_settings(database_password="aws-rds-iam://"))
    async with lifespan(app):
        store: SecretStore = resources(app).store
        entry = store.entry("DATABASE_PASSWORD")
        assert entry is not None
        assert (entry.source, entry.ttl) == ("aws-rds-iam", 900)
        netloc, query = _token_parts(entry.value.get_secret_value())
        assert netloc == "127.0.0.1:5432"
        assert query["Action"] == ["connect"]
        assert query["DBUser"] == ["postgres"]
        assert query["X-Amz-Expires"] == ["900"]
        assert query["X-Amz-Credential"][0].startswith(f"{aws_identity}/")
        assert "/eu-west-1/rds-db/aws4_request" in query["X-Amz-Credential"][0]
        async with client_for(app) as client:
            assert (await client.get("/health/ready")).status_code == 200


async def test_an_explicit_target_and_missing_credentials(
    aws_identity: str, make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await SecretStore.open(
        make_settings(database_password="aws-rds-iam://app_iam@db.internal.example:6432"), SECRETS
    )
    await store.aclose()
    netloc, query = _token_parts(store.get("DATABASE_PASSWORD").get_secret_value())  # type: ignore[union-attr]
    assert (netloc, query["DBUser"]) == ("db.internal.example:6432", ["app_iam"])

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    message = await open_error(make_settings(database_password="aws-rds-iam://"))
    assert "DATABASE_PASSWORD (from DATABASE_PASSWORD=aws-rds-iam://)" in message
    assert "no AWS credentials found" in message
