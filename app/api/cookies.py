"""The refresh token in a cookie, for browser clients (`REFRESH_TOKEN_COOKIE=true`).

The cookie is `HttpOnly` (no script reads it), `Secure`, `SameSite=Strict` and scoped to
`/api/v1/auth`, so it is sent only to the refresh and logout endpoints. A request that USES the
cookie must also come from an allowed `Origin` (`CORS_ORIGINS`): SameSite already stops
cross-site sends in current browsers; the Origin check is the defence that does not depend on
the browser (CSRF). Bodies and the token endpoint's form keep working as before.
"""

from __future__ import annotations

from fastapi import HTTPException, Request, Response, status

from app.config import Settings

COOKIE = "refresh_token"
PATH = "/api/v1/auth"


def set_refresh_cookie(response: Response, token: str, settings: Settings) -> None:
    if settings.refresh_token_cookie:
        response.set_cookie(
            COOKIE,
            token,
            max_age=settings.refresh_token_ttl_seconds,
            path=PATH,
            secure=True,
            httponly=True,
            samesite="strict",
        )


def clear_refresh_cookie(response: Response, settings: Settings) -> None:
    if settings.refresh_token_cookie:
        response.delete_cookie(COOKIE, path=PATH, secure=True, httponly=True, samesite="strict")


def cookie_token(request: Request, settings: Settings) -> str | None:
    """The refresh token from the cookie, when the mode is on and the request carries one;
    403 when it comes from an origin not in `CORS_ORIGINS` (or names none)."""
    if not settings.refresh_token_cookie:
        return None
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    if request.headers.get("origin") not in settings.allowed_origins:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Origin not allowed")
    return token
