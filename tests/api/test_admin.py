"""SPEC section 3: admins and scopes. Access tokens carry `scope`; `/api/v1/admin/users` lists
and changes accounts for the `admin` scope only; disabling an account or changing its role ends
its sessions at once, on every replica."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import jwt
from sqlalchemy import update

from app.models import User
from tests.api.auth_helpers import PASSWORD, bearer, login, me, refresh, register, signed_in
from tests.conftest import SettingsFactory
from tests.support.app import client_for, resources, running_app


async def _make_admin(app: object, client: httpx.AsyncClient) -> dict[str, str]:
    email, _ = await signed_in(client)
    async with resources(app).sessionmaker() as session:
        await session.execute(update(User).where(User.email == email).values(role="admin"))
        await session.commit()
    tokens: dict[str, str] = (await login(client, email)).json()
    return tokens


def _scope(access_token: str) -> str:
    claims = jwt.decode(access_token, options={"verify_signature": False})
    scope: str = claims["scope"]
    return scope


async def test_tokens_carry_the_role_s_scope_and_only_admins_reach_admin_routes(
    app: object, client: httpx.AsyncClient
) -> None:
    _, user = await signed_in(client)
    assert _scope(user["access_token"]) == ""
    assert (
        await client.get("/api/v1/admin/users", headers=bearer(user["access_token"]))
    ).status_code == 403
    assert (await client.get("/api/v1/admin/users")).status_code == 401
    admin = await _make_admin(app, client)
    assert _scope(admin["access_token"]) == "admin"
    listed = await client.get("/api/v1/admin/users", headers=bearer(admin["access_token"]))
    assert listed.status_code == 200
    first = listed.json()["items"][0]
    assert set(first) == {"id", "email", "role", "is_active", "email_verified", "created_at"}
    assert (await me(client, admin["access_token"])).json()["role"] == "admin"


async def test_the_list_is_keyset_paginated(app: object, client: httpx.AsyncClient) -> None:
    admin = await _make_admin(app, client)
    for _ in range(4):
        await register(client)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await client.get(
            "/api/v1/admin/users", params=params, headers=bearer(admin["access_token"])
        )
        assert page.status_code == 200
        body = page.json()
        assert len(body["items"]) <= 2
        seen += [user["id"] for user in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5
    bad = await client.get(
        "/api/v1/admin/users", params={"cursor": "!!"}, headers=bearer(admin["access_token"])
    )
    assert bad.status_code == 422


async def test_disabling_an_account_ends_its_sessions_on_every_replica(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings()
    async with (
        running_app(settings) as one,
        running_app(settings) as two,
        client_for(one) as first,
        client_for(two) as second,
    ):
        admin = await _make_admin(one, first)
        email, victim = await signed_in(first)
        user_id = (await me(first, victim["access_token"])).json()["id"]
        assert (await me(second, victim["access_token"])).status_code == 200
        patched = await first.patch(
            f"/api/v1/admin/users/{user_id}",
            json={"is_active": False},
            headers=bearer(admin["access_token"]),
        )
        assert patched.status_code == 200
        assert patched.json()["is_active"] is False
        for client in (first, second):
            assert await _becomes_401(client, victim["access_token"])
        assert (await refresh(second, victim["refresh_token"])).status_code == 401
        assert (await login(second, email)).status_code == 401


async def _becomes_401(client: httpx.AsyncClient, token: str, within: float = 5.0) -> bool:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if (await me(client, token)).status_code == 401:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_a_role_change_ends_the_old_tokens_and_new_ones_carry_the_new_scope(
    app: object, client: httpx.AsyncClient
) -> None:
    admin = await _make_admin(app, client)
    email, user = await signed_in(client)
    user_id = (await me(client, user["access_token"])).json()["id"]
    promoted = await client.patch(
        f"/api/v1/admin/users/{user_id}",
        json={"role": "admin"},
        headers=bearer(admin["access_token"]),
    )
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "admin"
    assert await _becomes_401(client, user["access_token"])
    fresh = (await login(client, email)).json()
    assert _scope(fresh["access_token"]) == "admin"
    # Demoted again: its admin token stops working for admin routes at once.
    demoted = await client.patch(
        f"/api/v1/admin/users/{user_id}",
        json={"role": "user"},
        headers=bearer(admin["access_token"]),
    )
    assert demoted.status_code == 200
    answer = await client.get("/api/v1/admin/users", headers=bearer(fresh["access_token"]))
    assert answer.status_code in (401, 403)


async def test_patch_errors(app: object, client: httpx.AsyncClient) -> None:
    admin = await _make_admin(app, client)
    headers = bearer(admin["access_token"])
    missing = await client.patch(
        f"/api/v1/admin/users/{uuid.uuid4()}", json={"is_active": False}, headers=headers
    )
    assert missing.status_code == 404
    _, user = await signed_in(client)
    user_id = (await me(client, user["access_token"])).json()["id"]
    for body in ({"role": "superuser"}, {"is_active": "maybe"}, {"email": "x@example.com"}):
        assert (
            await client.patch(f"/api/v1/admin/users/{user_id}", json=body, headers=headers)
        ).status_code == 422
    not_admin = await client.patch(
        f"/api/v1/admin/users/{user_id}",
        json={"role": "admin"},
        headers=bearer(user["access_token"]),
    )
    assert not_admin.status_code == 403
    assert PASSWORD not in not_admin.text
