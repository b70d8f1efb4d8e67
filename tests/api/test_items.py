"""`/api/v1/items`, the example resource: CRUD, ownership (another user's item is 404), keyset
pagination with an opaque cursor, validation that never echoes input, and 401 without a token.
Copy this file with the route module."""

from __future__ import annotations

import base64
import json
import struct
import uuid
from typing import Any

import httpx
import pytest

from tests.api.auth_helpers import bearer, signed_in

ITEMS = "/api/v1/items"


async def user_headers(client: httpx.AsyncClient) -> dict[str, str]:
    _, tokens = await signed_in(client)
    return bearer(tokens["access_token"])


async def create(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post(ITEMS, json={"title": "a title", **body}, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_create_then_read(client: httpx.AsyncClient) -> None:
    headers = await user_headers(client)
    created = await create(client, headers, title="Groceries", description="milk, eggs")
    assert created["title"] == "Groceries"
    assert created["description"] == "milk, eggs"
    assert set(created) == {"id", "title", "description", "created_at", "updated_at"}
    fetched = await client.get(f"{ITEMS}/{created['id']}", headers=headers)
    assert fetched.status_code == 200
    assert fetched.json() == created


async def test_description_is_optional(client: httpx.AsyncClient) -> None:
    created = await create(client, await user_headers(client))
    assert created["description"] is None


async def test_patch_changes_only_what_is_sent(client: httpx.AsyncClient) -> None:
    headers = await user_headers(client)
    created = await create(client, headers, title="old", description="kept")
    patched = await client.patch(f"{ITEMS}/{created['id']}", json={"title": "new"}, headers=headers)
    assert patched.status_code == 200
    body = patched.json()
    assert (body["title"], body["description"]) == ("new", "kept")
    assert body["created_at"] == created["created_at"]
    assert body["updated_at"] > created["updated_at"]

    cleared = await client.patch(
        f"{ITEMS}/{created['id']}", json={"description": None}, headers=headers
    )
    assert cleared.status_code == 200
    assert (cleared.json()["title"], cleared.json()["description"]) == ("new", None)

    unchanged = await client.patch(f"{ITEMS}/{created['id']}", json={}, headers=headers)
    assert unchanged.status_code == 200
    assert unchanged.json() == cleared.json()
    assert (await client.get(f"{ITEMS}/{created['id']}", headers=headers)).json() == cleared.json()


async def test_delete(client: httpx.AsyncClient) -> None:
    headers = await user_headers(client)
    created = await create(client, headers)
    deleted = await client.delete(f"{ITEMS}/{created['id']}", headers=headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (await client.get(f"{ITEMS}/{created['id']}", headers=headers)).status_code == 404
    assert (await client.delete(f"{ITEMS}/{created['id']}", headers=headers)).status_code == 404


async def test_another_users_item_is_404_for_every_method(client: httpx.AsyncClient) -> None:
    owner, intruder = await user_headers(client), await user_headers(client)
    item = await create(client, owner, title="mine", description="private")
    url = f"{ITEMS}/{item['id']}"
    unknown = f"{ITEMS}/{uuid.uuid4()}"
    for target in (url, unknown):
        answers = [
            await client.get(target, headers=intruder),
            await client.patch(target, json={"title": "stolen"}, headers=intruder),
            await client.patch(target, json={}, headers=intruder),
            await client.delete(target, headers=intruder),
        ]
        assert [a.status_code for a in answers] == [404, 404, 404, 404]
        # Someone else's item and no item at all look exactly alike.
        assert {a.text for a in answers} == {'{"detail":"Item not found"}'}
    listed = await client.get(ITEMS, headers=intruder)
    assert listed.json() == {"items": [], "next_cursor": None}
    # Untouched for its owner.
    still = await client.get(url, headers=owner)
    assert (still.json()["title"], still.json()["description"]) == ("mine", "private")


async def test_list_pages_newest_first_with_an_opaque_cursor(client: httpx.AsyncClient) -> None:
    headers = await user_headers(client)
    created = [await create(client, headers, title=f"item {n}") for n in range(5)]
    await create(client, await user_headers(client), title="someone else's")

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await client.get(ITEMS, params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert set(cursor) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )
    assert pages == 3
    assert seen == [item["id"] for item in reversed(created)]


async def test_an_item_added_between_pages_is_neither_repeated_nor_skipped(
    client: httpx.AsyncClient,
) -> None:
    headers = await user_headers(client)
    older = [await create(client, headers, title=f"old {n}") for n in range(3)]
    first = (await client.get(ITEMS, params={"limit": 2}, headers=headers)).json()
    await create(client, headers, title="newer than the first page")
    rest = (
        await client.get(
            ITEMS, params={"limit": 10, "cursor": first["next_cursor"]}, headers=headers
        )
    ).json()
    ids = [item["id"] for item in first["items"] + rest["items"]]
    assert ids == [item["id"] for item in reversed(older)]
    assert rest["next_cursor"] is None


async def test_limit_defaults_to_20_and_is_bounded(client: httpx.AsyncClient) -> None:
    headers = await user_headers(client)
    for n in range(21):
        await create(client, headers, title=f"item {n}")
    default = (await client.get(ITEMS, headers=headers)).json()
    assert len(default["items"]) == 20
    assert default["next_cursor"] is not None
    for limit in ("0", "101", "-1", "many"):
        response = await client.get(ITEMS, params={"limit": limit}, headers=headers)
        assert response.status_code == 422, limit
        assert response.json()["detail"][0]["loc"] == ["query", "limit"]
    assert (await client.get(ITEMS, params={"limit": 100}, headers=headers)).status_code == 200


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor",
        "%" * 32,
        "A" * 31,
        "A" * 33,
        "A" * 31 + "=",
        _b64(b'["2026-01-01T00:00:00+00:00", "a5f0d8d4"]'),  # someone else's cursor format
    ],
)
async def test_a_tampered_cursor_is_422_without_echo(
    client: httpx.AsyncClient, cursor: str
) -> None:
    headers = await user_headers(client)
    response = await client.get(ITEMS, params={"cursor": cursor}, headers=headers)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "cursor"]
    assert cursor not in response.text


@pytest.mark.parametrize(
    "position",
    [
        (2**62, b"\xff" * 16),  # far in the future (clamped): from the newest
        (-(2**62), b"\x00" * 16),  # far in the past (clamped): nothing is older
        (0, uuid.uuid4().bytes),  # 1970: nothing is older either
    ],
)
async def test_any_well_formed_cursor_is_a_position_among_the_callers_items_only(
    client: httpx.AsyncClient, position: tuple[int, bytes]
) -> None:
    headers = await user_headers(client)
    await create(client, await user_headers(client), title="someone else's")
    mine = await create(client, headers, title="mine")
    forged = _b64(struct.pack(">q16s", *position))
    response = await client.get(ITEMS, params={"cursor": forged}, headers=headers)
    assert response.status_code == 200
    ids = [item["id"] for item in response.json()["items"]]
    assert ids == ([mine["id"]] if position[0] > 0 else [])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "t" * 201}, "title"),
        ({"title": None}, "title"),
        ({"title": 5}, "title"),
        ({"title": "nul \x00 byte"}, "title"),
        ({"title": "lone \ud800 surrogate"}, "title"),
        ({"title": "ok", "description": "d" * 2001}, "description"),
        ({"title": "ok", "owner_id": str(uuid.uuid4())}, "owner_id"),
    ],
)
async def test_invalid_bodies_are_422_naming_the_field_without_echo(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    headers = await user_headers(client)
    created = await create(client, headers)
    for method, url in (("POST", ITEMS), ("PATCH", f"{ITEMS}/{created['id']}")):
        if method == "PATCH" and body == {}:
            continue  # an empty PATCH is valid: it changes nothing
        # json.dumps escapes a lone surrogate as `\ud800`, as a client's JSON may.
        content = json.dumps(body).encode()
        json_headers = {**headers, "Content-Type": "application/json"}
        response = await client.request(method, url, content=content, headers=json_headers)
        assert response.status_code == 422, (method, body)
        [error] = response.json()["detail"]
        assert error["loc"][:2] == ["body", field], (method, error)
        for value in body.values():
            if isinstance(value, str) and len(value) > 3:
                assert value not in response.text


async def test_malformed_json_is_422_without_echo(client: httpx.AsyncClient) -> None:
    headers = {**await user_headers(client), "Content-Type": "application/json"}
    response = await client.post(ITEMS, content=b'{"title": "half-sent', headers=headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"
    assert "half-sent" not in response.text


async def test_a_malformed_id_is_422(client: httpx.AsyncClient) -> None:
    headers = await user_headers(client)
    response = await client.get(f"{ITEMS}/not-a-uuid", headers=headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "item_id"]


async def test_every_route_needs_a_token(client: httpx.AsyncClient) -> None:
    item = f"{ITEMS}/{uuid.uuid4()}"
    answers = [
        await client.post(ITEMS, json={"title": "x"}),
        await client.get(ITEMS),
        await client.get(item),
        await client.patch(item, json={"title": "x"}),
        await client.delete(item),
        await client.get(ITEMS, headers=bearer("not-a-token")),
    ]
    assert [a.status_code for a in answers] == [401] * 6
    assert all(a.headers["www-authenticate"] == "Bearer" for a in answers)


async def test_deleting_the_owner_deletes_the_items(
    client: httpx.AsyncClient, database_url: str
) -> None:
    import asyncpg

    from tests.support.services import asyncpg_dsn

    email, tokens = await signed_in(client)
    item = await create(client, bearer(tokens["access_token"]))
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await connection.execute("DELETE FROM users WHERE email = $1", email)
        left = await connection.fetchval(
            "SELECT count(*) FROM items WHERE id = $1", uuid.UUID(item["id"])
        )
    finally:
        await connection.close()
    assert left == 0
