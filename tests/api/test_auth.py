"""The auth API (SPEC section 3): register, login, refresh, logout, as a client sees them."""

from __future__ import annotations

import asyncio
import time

import httpx
import jwt

from tests.api.auth_helpers import (
    PASSWORD,
    bearer,
    login,
    logout,
    me,
    new_email,
    refresh,
    register,
    signed_in,
)
from tests.conftest import SettingsFactory
from tests.support.app import resources, running_client


async def test_register_returns_id_and_lower_cased_email(client: httpx.AsyncClient) -> None:
    local = new_email().split("@")[0]
    body = await register(client, f"  {local.upper()}@Example.COM ")
    assert set(body) == {"id", "email"}
    assert body["email"] == f"{local}@example.com"


async def test_register_duplicate_is_409_case_insensitively(client: httpx.AsyncClient) -> None:
    email = new_email()
    await register(client, email)
    again = await client.post(
        "/api/v1/auth/register", json={"email": email.upper(), "password": PASSWORD}
    )
    assert again.status_code == 409
    assert email not in again.text.lower()


async def test_register_rejects_bad_input_without_echoing_it(client: httpx.AsyncClient) -> None:
    cases = [
        {"email": "not-an-email<script>", "password": PASSWORD},
        {"email": new_email(), "password": "short7!"},
        {"email": new_email(), "password": "x" * 129},
        {"email": new_email()},
        {"password": PASSWORD},
    ]
    for body in cases:
        response = await client.post("/api/v1/auth/register", json=body)
        assert response.status_code == 422, body
        for value in body.values():
            assert value not in response.text


async def test_password_length_counts_characters_and_unicode_is_fine(
    client: httpx.AsyncClient,
) -> None:
    email = new_email()
    password = "пароль-密码-🔑"
    await register(client, email, password)
    assert (await login(client, email, password)).status_code == 200
    boundary = await client.post(
        "/api/v1/auth/register", json={"email": new_email(), "password": "é" * 128}
    )
    assert boundary.status_code == 201


async def test_login_returns_the_token_pair(client: httpx.AsyncClient) -> None:
    email = new_email()
    await register(client, email)
    response = await login(client, email.upper())
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert response.headers["cache-control"] == "no-store"
    header = jwt.get_unverified_header(body["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["kid"]
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert {"iss", "aud", "sub", "iat", "nbf", "exp", "jti"} <= set(claims)
    assert claims["exp"] - claims["iat"] == 900


async def test_unknown_user_and_wrong_password_look_the_same(client: httpx.AsyncClient) -> None:
    email = new_email()
    await register(client, email)
    wrong = await login(client, email, "wrong password!")
    unknown = await login(client, new_email(), "wrong password!")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.headers.get("www-authenticate") == unknown.headers.get("www-authenticate")


async def test_me_returns_the_user(client: httpx.AsyncClient) -> None:
    email, tokens = await signed_in(client)
    response = await me(client, tokens["access_token"])
    assert response.status_code == 200
    assert response.json()["email"] == email
    assert response.json() == {
        "id": response.json()["id"],
        "email": email,
        "role": "user",
        "email_verified": False,
        "mfa_enabled": False,
    }


async def test_me_requires_a_bearer_header(client: httpx.AsyncClient) -> None:
    _, tokens = await signed_in(client)
    token = tokens["access_token"]
    assert (await client.get("/api/v1/users/me")).status_code == 401
    in_query = await client.get("/api/v1/users/me", params={"access_token": token})
    assert in_query.status_code == 401, "tokens in query strings are ignored"
    in_cookie = await client.get("/api/v1/users/me", headers={"Cookie": f"access_token={token}"})
    assert in_cookie.status_code == 401
    garbage = await me(client, "not.a.token")
    assert garbage.status_code == 401
    assert "not.a.token" not in garbage.text


async def test_refresh_and_access_tokens_are_not_interchangeable(client: httpx.AsyncClient) -> None:
    _, tokens = await signed_in(client)
    as_access = await me(client, tokens["refresh_token"])
    assert as_access.status_code == 401
    as_refresh = await refresh(client, tokens["access_token"])
    assert as_refresh.status_code == 401


async def test_refresh_rotates_and_the_old_token_is_single_use(client: httpx.AsyncClient) -> None:
    _, tokens = await signed_in(client)
    first = await refresh(client, tokens["refresh_token"])
    assert first.status_code == 200
    pair = first.json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert pair["refresh_token"] != tokens["refresh_token"]
    assert (await me(client, pair["access_token"])).status_code == 200
    second = await refresh(client, pair["refresh_token"])
    assert second.status_code == 200


async def test_reusing_a_rotated_refresh_token_revokes_the_family(
    client: httpx.AsyncClient,
) -> None:
    _, tokens = await signed_in(client)
    rotated = await refresh(client, tokens["refresh_token"])
    newest = rotated.json()
    replay = await refresh(client, tokens["refresh_token"])
    assert replay.status_code == 401
    # The thief's replay killed the whole family: the legitimate newest token is dead too,
    # and so are the session's access tokens.
    after = await refresh(client, newest["refresh_token"])
    assert after.status_code == 401
    assert (await me(client, newest["access_token"])).status_code == 401


async def test_ten_concurrent_refreshes_have_at_most_one_winner(client: httpx.AsyncClient) -> None:
    _, tokens = await signed_in(client)
    responses = await asyncio.gather(
        *(
            client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
            for _ in range(10)
        )
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) <= 1
    assert set(statuses) <= {200, 401}


async def test_garbage_refresh_tokens_are_401(client: httpx.AsyncClient) -> None:
    for token in ["", "x", "a" * 22 + "." + "b" * 43, "a.b.c", "€" * 10]:
        response = await refresh(client, token)
        assert response.status_code in {401, 422}, token
        if token:
            assert token not in response.text


async def test_logout_revokes_the_access_token_and_the_family(client: httpx.AsyncClient) -> None:
    _, tokens = await signed_in(client)
    access = tokens["access_token"]
    assert (await me(client, access)).status_code == 200
    out = await logout(client, access)
    assert out.status_code == 204
    assert (await me(client, access)).status_code == 401
    again = await logout(client, access)
    assert again.status_code == 401
    refreshed = await refresh(client, tokens["refresh_token"])
    assert refreshed.status_code == 401


async def test_logout_with_a_refresh_token_of_another_login_revokes_it_too(
    client: httpx.AsyncClient,
) -> None:
    email = new_email()
    await register(client, email)
    one = (await login(client, email)).json()
    two = (await login(client, email)).json()
    out = await client.post(
        "/api/v1/auth/logout",
        headers=bearer(one["access_token"]),
        json={"refresh_token": two["refresh_token"]},
    )
    assert out.status_code == 204
    refreshed = await refresh(client, two["refresh_token"])
    assert refreshed.status_code == 401


async def test_logout_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/v1/auth/logout")).status_code == 401


async def test_revoked_access_token_ttl_matches_its_remaining_lifetime(
    client: httpx.AsyncClient, app: object, redis_prefix: str
) -> None:
    _, tokens = await signed_in(client)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    await logout(client, tokens["access_token"])
    redis = resources(app).redis
    score = await redis.zscore(f"{redis_prefix}revoked", f"jti:{claims['jti']}")
    assert score == claims["exp"]
    ttl = await redis.ttl(f"{redis_prefix}revoked")
    assert 0 < ttl <= 900 + 60


async def test_family_has_an_absolute_maximum_age(make_settings: SettingsFactory) -> None:
    settings = make_settings(refresh_family_max_age_seconds=2)
    async with running_client(settings) as client:
        _, tokens = await signed_in(client)
        first = await refresh(client, tokens["refresh_token"])
        assert first.status_code == 200
        time.sleep(2.2)
        late = await refresh(client, first.json()["refresh_token"])
        assert late.status_code == 401


async def test_refresh_token_expires_after_its_own_ttl(make_settings: SettingsFactory) -> None:
    async with running_client(make_settings(refresh_token_ttl_seconds=1)) as client:
        _, tokens = await signed_in(client)
        time.sleep(1.2)
        late = await refresh(client, tokens["refresh_token"])
        assert late.status_code == 401


async def test_expired_access_token_is_401(make_settings: SettingsFactory) -> None:
    async with running_client(make_settings(access_token_ttl_seconds=4)) as client:
        _, tokens = await signed_in(client)
        exp = jwt.decode(tokens["access_token"], options={"verify_signature": False})["exp"]
        if time.time() < exp - 0.5:  # a slow machine may already have used the lifetime up
            assert (await me(client, tokens["access_token"])).status_code == 200
        time.sleep(max(0.0, exp - time.time()) + 1.1)
        assert (await me(client, tokens["access_token"])).status_code == 401


async def test_malleated_encodings_of_a_logged_out_token_stay_revoked(
    client: httpx.AsyncClient,
) -> None:
    _, tokens = await signed_in(client)
    token = tokens["access_token"]
    header, payload, signature = token.split(".")
    assert (await logout(client, token)).status_code == 204
    std_alphabet = signature.replace("-", "+").replace("_", "/")
    variants = [
        token,
        f"{token}=",
        f"{token}==",
        f"{header}.{payload}.{std_alphabet}",
        f"{header}=.{payload}.{signature}",
        f"{header}.{payload}=.{signature}",
        f"{token} ",
        f" {token}",
        f"{token}.",
        f"{header}.{payload}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",
    ]
    for variant in variants:
        response = await client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {variant}"}
        )
        assert response.status_code == 401, variant
