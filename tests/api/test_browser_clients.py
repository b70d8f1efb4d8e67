"""Browser clients (SPEC section 2, `CORS_ORIGINS` and `REFRESH_TOKEN_COOKIE`): exact origins
with credentials, nothing for the others, `*` refused in production; the refresh token also in
an HttpOnly cookie scoped to /api/v1/auth, used only from an allowed Origin."""

from __future__ import annotations

import pytest

from app.secrets import ConfigError
from tests.api.auth_helpers import PASSWORD, bearer, new_email, register
from tests.conftest import SettingsFactory
from tests.support.app import running_app, running_client

APP = "https://app.example.test"
EVIL = "https://evil.example.test"


async def test_allowed_origins_get_cors_with_credentials_and_others_nothing(
    make_settings: SettingsFactory,
) -> None:
    async with running_client(
        make_settings(cors_origins=f"{APP}, https://admin.example.test")
    ) as c:
        preflight = await c.options(
            "/api/v1/users/me",
            headers={
                "Origin": APP,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["Access-Control-Allow-Origin"] == APP
        assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
        simple = await c.get("/health/live", headers={"Origin": APP})
        assert simple.headers["Access-Control-Allow-Origin"] == APP
        for answer in (
            await c.options(
                "/api/v1/users/me",
                headers={"Origin": EVIL, "Access-Control-Request-Method": "GET"},
            ),
            await c.get("/health/live", headers={"Origin": EVIL}),
        ):
            assert "Access-Control-Allow-Origin" not in answer.headers
    async with running_client(make_settings()) as c:  # no CORS_ORIGINS: no CORS at all
        answer = await c.get("/health/live", headers={"Origin": APP})
        assert "Access-Control-Allow-Origin" not in answer.headers


async def test_production_refuses_a_wildcard_origin(make_settings: SettingsFactory) -> None:
    settings = make_settings(
        app_env="production",
        jwt_issuer="https://auth.example.test",
        jwt_audience="https://api.example.test",
        cors_origins="*",
    )
    with pytest.raises(ConfigError, match="CORS_ORIGINS"):
        async with running_app(settings):
            pass


async def test_the_refresh_cookie_is_httponly_secure_strict_and_scoped(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(refresh_token_cookie=True, cors_origins=APP)
    async with running_client(settings) as client:
        email = new_email()
        await register(client, email)
        login = await client.post(
            "/api/v1/auth/login", data={"username": email, "password": PASSWORD}
        )
        assert login.status_code == 200
        cookie = login.headers["set-cookie"]
        token = login.json()["refresh_token"]
        assert cookie.startswith(f"refresh_token={token};")
        for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Path=/api/v1/auth"):
            assert attribute.lower() in cookie.lower(), attribute
        jar = {"Cookie": f"refresh_token={token}"}

        # Used from no origin or another origin: refused, and the token is not consumed.
        for origin in ({}, {"Origin": EVIL}):
            refused = await client.post("/api/v1/auth/refresh", headers={**jar, **origin})
            assert refused.status_code == 403
        rotated = await client.post("/api/v1/auth/refresh", headers={**jar, "Origin": APP})
        assert rotated.status_code == 200, rotated.text
        fresh = rotated.json()
        assert f"refresh_token={fresh['refresh_token']};" in rotated.headers["set-cookie"]

        out = await client.post(
            "/api/v1/auth/logout",
            headers={
                **bearer(fresh["access_token"]),
                "Cookie": f"refresh_token={fresh['refresh_token']}",
                "Origin": APP,
            },
        )
        assert out.status_code == 204
        assert (
            'refresh_token=""' in out.headers["set-cookie"]
            or "Max-Age=0" in (out.headers["set-cookie"])
        )
        again = await client.post(
            "/api/v1/auth/refresh",
            headers={"Cookie": f"refresh_token={fresh['refresh_token']}", "Origin": APP},
        )
        assert again.status_code == 401, "logout revoked the cookie's family"


async def test_without_the_mode_the_cookie_is_ignored(make_settings: SettingsFactory) -> None:
    async with running_client(make_settings(cors_origins=APP)) as client:
        email = new_email()
        await register(client, email)
        login = await client.post(
            "/api/v1/auth/login", data={"username": email, "password": PASSWORD}
        )
        assert "set-cookie" not in login.headers
        token = login.json()["refresh_token"]
        answer = await client.post(
            "/api/v1/auth/refresh", headers={"Cookie": f"refresh_token={token}", "Origin": APP}
        )
        assert answer.status_code == 422
