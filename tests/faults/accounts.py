"""A real account and its bearer token, made through the API itself."""

from __future__ import annotations

import secrets

import httpx


async def register_and_login(client: httpx.AsyncClient) -> dict[str, str]:
    """Authorization headers for a fresh account."""
    email, password = f"fault-{secrets.token_hex(5)}@example.com", secrets.token_urlsafe(16)
    registered = await client.post("/api/v1/auth/register",
                                   json={"email": email, "password": password})
    assert registered.status_code == 201, registered.text
    return await login(client, email, password)


async def login(client: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    response = await client.post("/api/v1/auth/login",
                                 data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
