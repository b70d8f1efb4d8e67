"""`GET /.well-known/jwks.json`: public halves of asymmetric keys only."""

from __future__ import annotations

import secrets

import httpx

from tests.conftest import SettingsFactory
from tests.security.keys import new_jwk, ring_text
from tests.support.app import running_client


async def test_hmac_only_ring_publishes_nothing(client: httpx.AsyncClient) -> None:
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.json() == {"keys": []}


async def test_publishes_public_keys_with_short_cache(make_settings: SettingsFactory) -> None:
    documents = [new_jwk("EdDSA"), new_jwk("ES256"), new_jwk("HS256")]
    settings = make_settings(jwt_keys=ring_text(*documents), secrets_refresh_seconds=30)
    async with running_client(settings) as client:
        response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert {key["kid"] for key in keys} == {documents[0]["kid"], documents[1]["kid"]}
    for document in documents:
        secret_member = document.get("d") or document.get("k")
        assert secret_member not in response.text
    cache = response.headers["cache-control"]
    max_age = int(cache.split("max-age=")[1].split(",")[0])
    assert 0 <= max_age <= 30
    assert secrets.compare_digest(keys[0]["use"], "sig")
