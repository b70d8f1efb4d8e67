"""Shared steps for the auth API tests: register, log in, authorise, refresh, log out."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

PASSWORD = "correct horse battery staple"


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


async def register(
    client: httpx.AsyncClient, email: str | None = None, password: str = PASSWORD
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/auth/register", json={"email": email or new_email(), "password": password}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/v1/auth/login", data={"username": email, "password": password})


async def signed_in(client: httpx.AsyncClient) -> tuple[str, dict[str, Any]]:
    """Register a fresh user and log in; return (email, token response)."""
    email = new_email()
    await register(client, email)
    response = await login(client, email)
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return email, tokens


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def me(client: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await client.get("/api/v1/users/me", headers=bearer(access_token))


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})


async def logout(client: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await client.post("/api/v1/auth/logout", headers=bearer(access_token))
