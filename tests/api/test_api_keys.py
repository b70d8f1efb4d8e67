"""SPEC section 3, "API keys": create (shown once, scopes no wider than the caller's, optional
expiry), list (never the key), delete (refused at once, on every replica: the two-replica test is
below), and authentication with `Authorization: Bearer <key>` or `X-API-Key` on every route a
token with the same scopes may call; over HTTP against the real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text, update

from app.models import ApiKey, User
from app.security import api_keys
from app.security.api_key_service import CACHE_TTL_SECONDS
from tests.api.auth_helpers import PASSWORD, bearer, login, me, signed_in
from tests.conftest import SettingsFactory
from tests.security.user_cache_helpers import me_becomes
from tests.support.app import client_for, resources, revocations_live, running_app

KEYS = "/api/v1/api-keys"
CHANGE = {"current_password": PASSWORD, "new_password": "another passphrase"}


async def create(client: httpx.AsyncClient, access_token: str, **body: Any) -> dict[str, Any]:
    response = await client.post(KEYS, json={"name": "ci", **body}, headers=bearer(access_token))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def key_header(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


async def make_admin(app: object, email: str) -> None:
    async with resources(app).sessionmaker() as session:
        await session.execute(update(User).where(User.email == email).values(role="admin"))
        await session.commit()


# ---- creating, listing, deleting -------------------------------------------------------------


async def test_create_shows_the_key_once_and_stores_only_its_hash(
    app: object, client: httpx.AsyncClient
) -> None:
    _, tokens = await signed_in(client)
    response = await client.post(
        KEYS, json={"name": "deploy bot"}, headers=bearer(tokens["access_token"])
    )
    assert response.status_code == 201, response.text
    assert response.headers["Cache-Control"] == "no-store"
    created = response.json()
    assert set(created) == {"id", "name", "key", "prefix", "scopes", "expires_at"}
    key = created["key"]
    assert api_keys.parse(key).lookup_id == created["prefix"].removeprefix("fst_")
    assert key.startswith(created["prefix"])
    assert (created["name"], created["scopes"], created["expires_at"]) == ("deploy bot", [], None)
    async with resources(app).sessionmaker() as session:
        row = (
            await session.execute(
                text("SELECT * FROM api_keys WHERE id = :id"), {"id": created["id"]}
            )
        ).one()
    assert key not in str(tuple(row))
    assert row.key_hash == api_keys.hash_key(key)
    assert row.key_hash != hashlib.sha256(key.encode()).hexdigest()  # domain-separated
    listed = await client.get(KEYS, headers=bearer(tokens["access_token"]))
    assert listed.status_code == 200
    (item,) = listed.json()["items"]
    assert set(item) == {
        "id", "name", "prefix", "scopes", "expires_at", "last_used_at", "created_at"
    }  # fmt: skip
    assert key not in listed.text


async def test_expiry_is_optional_and_enforced(app: object, client: httpx.AsyncClient) -> None:
    _, tokens = await signed_in(client)
    created = await create(client, tokens["access_token"], expires_in_days=30)
    expires = datetime.fromisoformat(created["expires_at"])
    expected = datetime.now(UTC) + timedelta(days=30)
    assert abs((expires - expected).total_seconds()) < 60
    assert (
        await client.get("/api/v1/users/me", headers=key_header(created["key"]))
    ).status_code == 200
    async with resources(app).sessionmaker() as session:
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == created["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    # A fresh replica's view (the cached record said 30 days): expiry is read with the row.
    resources(app).security.api_keys._items.clear()
    assert (
        await client.get("/api/v1/users/me", headers=key_header(created["key"]))
    ).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "x" * 101},
        {"name": "nul\u0000"},
        {"name": "ok", "scopes": ["root"]},
        {"name": "ok", "scopes": "admin"},
        {"name": "ok", "expires_in_days": 0},
        {"name": "ok", "expires_in_days": 3651},
        {"name": "ok", "extra": True},
    ],
)
async def test_create_validates_its_body(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    _, tokens = await signed_in(client)
    response = await client.post(KEYS, json=body, headers=bearer(tokens["access_token"]))
    assert response.status_code == 422


async def test_scopes_beyond_the_caller_s_are_refused(
    app: object, client: httpx.AsyncClient
) -> None:
    email, tokens = await signed_in(client)
    refused = await client.post(
        KEYS, json={"name": "x", "scopes": ["admin"]}, headers=bearer(tokens["access_token"])
    )
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "scopes"]
    await make_admin(app, email)
    admin = (await login(client, email)).json()
    admin_key = await create(client, admin["access_token"], scopes=["admin", "admin"])
    assert admin_key["scopes"] == ["admin"]
    plain_key = await create(client, admin["access_token"])
    users = "/api/v1/admin/users"
    assert (await client.get(users, headers=key_header(admin_key["key"]))).status_code == 200
    assert (await client.get(users, headers=key_header(plain_key["key"]))).status_code == 403
    # Demoted: the admin key keeps its row, but the owner's live role no longer grants it.
    async with resources(app).sessionmaker() as session:
        await session.execute(update(User).where(User.email == email).values(role="user"))
        await session.commit()
    seen = [(await client.get(users, headers=key_header(admin_key["key"]))).status_code]
    deadline = time.monotonic() + 2
    while seen[-1] != 403 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        seen.append((await client.get(users, headers=key_header(admin_key["key"]))).status_code)
    assert seen[-1] == 403, seen


async def test_the_list_is_the_caller_s_own_and_keyset_paginated(
    client: httpx.AsyncClient,
) -> None:
    _, mine = await signed_in(client)
    _, theirs = await signed_in(client)
    for index in range(5):
        await create(client, mine["access_token"], name=f"k{index}")
    await create(client, theirs["access_token"], name="not yours")
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await client.get(KEYS, params=params, headers=bearer(mine["access_token"]))
        assert page.status_code == 200
        seen += [item["name"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"k{index}" for index in reversed(range(5))]
    bad = await client.get(KEYS, params={"cursor": "!!"}, headers=bearer(mine["access_token"]))
    assert bad.status_code == 422


async def test_delete_refuses_the_key_at_once_and_is_404_for_others(
    client: httpx.AsyncClient,
) -> None:
    _, mine = await signed_in(client)
    _, theirs = await signed_in(client)
    created = await create(client, mine["access_token"])
    assert (await me(client, created["key"])).status_code == 200  # cached from now on
    other = await client.delete(f"{KEYS}/{created['id']}", headers=bearer(theirs["access_token"]))
    assert other.status_code == 404
    assert (await me(client, created["key"])).status_code == 200
    gone = await client.delete(f"{KEYS}/{created['id']}", headers=bearer(mine["access_token"]))
    assert gone.status_code == 204
    assert (await me(client, created["key"])).status_code == 401
    again = await client.delete(f"{KEYS}/{created['id']}", headers=bearer(mine["access_token"]))
    assert again.status_code == 404
    assert (
        await client.delete(f"{KEYS}/not-a-uuid", headers=bearer(mine["access_token"]))
    ).status_code == 422
    assert (await client.get(KEYS, headers=bearer(mine["access_token"]))).json()["items"] == []


# ---- authenticating with a key ---------------------------------------------------------------


async def test_a_key_works_as_bearer_and_as_x_api_key_on_user_routes(
    app: object, client: httpx.AsyncClient
) -> None:
    email, tokens = await signed_in(client)
    key = (await create(client, tokens["access_token"]))["key"]
    for headers in (bearer(key), key_header(key)):
        profile = await client.get("/api/v1/users/me", headers=headers)
        assert profile.status_code == 200
        assert profile.json()["email"] == email
        made = await client.post("/api/v1/items", json={"title": "by key"}, headers=headers)
        assert made.status_code == 201
        item = f"/api/v1/items/{made.json()['id']}"
        assert (await client.get(item, headers=headers)).status_code == 200
        assert (await client.delete(item, headers=headers)).status_code == 204
    listed = (await client.get(KEYS, headers=bearer(tokens["access_token"]))).json()["items"]
    assert listed[0]["last_used_at"] is not None


async def test_bad_keys_are_401_without_echo(client: httpx.AsyncClient) -> None:
    _, tokens = await signed_in(client)
    key = (await create(client, tokens["access_token"]))["key"]
    typo = key[:10] + ("A" if key[10] != "A" else "B") + key[11:]
    unknown = api_keys.generate().key  # well formed, checksum right, no such row
    for bad in (typo, unknown, key[:-1], "fst_", key + "x"):
        for headers in (bearer(bad), key_header(bad)):
            response = await client.get("/api/v1/users/me", headers=headers)
            assert response.status_code == 401
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert bad not in response.text
    # Two credentials at once are refused, not guessed between.
    both = {**bearer(tokens["access_token"]), **key_header(key)}
    assert (await client.get("/api/v1/users/me", headers=both)).status_code == 401
    # Query strings are ignored.
    anonymous = await client.get("/api/v1/users/me", params={"api_key": key, "access_token": key})
    assert anonymous.status_code == 401


async def test_a_disabled_or_deleted_owner_s_keys_are_refused(
    app: object, client: httpx.AsyncClient
) -> None:
    email, tokens = await signed_in(client)
    key = (await create(client, tokens["access_token"]))["key"]
    assert (await me(client, key)).status_code == 200
    async with resources(app).sessionmaker() as session:
        await session.execute(update(User).where(User.email == email).values(is_active=False))
        await session.commit()
    assert (await me_becomes(client, key_header(key), 401))[-1] == 401
    async with resources(app).sessionmaker() as session:
        await session.execute(update(User).where(User.email == email).values(is_active=True))
        await session.commit()
    assert (await me_becomes(client, key_header(key), 200))[-1] == 200
    deleted = await client.request(
        "DELETE",
        "/api/v1/users/me",
        json={"password": PASSWORD},
        headers=bearer(tokens["access_token"]),
    )
    assert deleted.status_code == 204
    assert (await me(client, key)).status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/auth/logout", None),
        ("POST", "/api/v1/auth/password/change", CHANGE),
        ("DELETE", "/api/v1/users/me", {"password": PASSWORD}),
        ("POST", "/api/v1/auth/mfa/setup", None),
        ("POST", "/api/v1/auth/mfa/enable", {"code": "123456"}),
        ("POST", "/api/v1/auth/mfa/disable", {"password": PASSWORD}),
        ("POST", KEYS, {"name": "minted by a key"}),
        ("GET", KEYS, None),
    ],
)  # fmt: skip
async def test_keys_cannot_manage_credentials(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    _, tokens = await signed_in(client)
    created = await create(client, tokens["access_token"])
    response = await client.request(method, path, json=body, headers=key_header(created["key"]))
    assert response.status_code == 403, response.text
    deleting = await client.delete(f"{KEYS}/{created['id']}", headers=bearer(created["key"]))
    assert deleting.status_code == 403
    assert (await me(client, created["key"])).status_code == 200  # nothing happened
    assert (await me(client, tokens["access_token"])).status_code == 200


async def test_key_routes_need_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.post(KEYS, json={"name": "x"})).status_code == 401
    assert (await client.get(KEYS)).status_code == 401
    assert (await client.delete(f"{KEYS}/00000000-0000-4000-8000-000000000000")).status_code == 401


# ---- two replicas ----------------------------------------------------------------------------


async def test_delete_on_one_replica_is_refused_at_once_by_another(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings()
    async with (
        running_app(settings) as one,
        running_app(settings) as two,
        client_for(one) as a,
        client_for(two) as b,
    ):
        await revocations_live(one)
        await revocations_live(two)
        _, tokens = await signed_in(a)
        created = await create(a, tokens["access_token"])
        headers = key_header(created["key"])
        assert (await b.get("/api/v1/users/me", headers=headers)).status_code == 200
        assert len(resources(two).security.api_keys) == 1  # replica two cached the key
        started = time.monotonic()
        deleted = await a.delete(f"{KEYS}/{created['id']}", headers=bearer(tokens["access_token"]))
        assert deleted.status_code == 204
        seen = await me_becomes(b, headers, 401, within=2)
        assert seen[-1] == 401, seen
        # Long before replica two's cached copy would have expired on its own.
        assert time.monotonic() - started < CACHE_TTL_SECONDS / 3
        assert resources(two).security.revocations.mirror_is_live
