"""Key material and token forging for the security tests (attacker's tools included)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from typing import Any

import jwt

from app.cli.keys_cmd import new_jwk

ISSUER = AUDIENCE = "app"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": secrets.token_urlsafe(8),
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def ring_text(*documents: dict[str, Any]) -> str:
    return json.dumps({"keys": list(documents)})


def sign_with(document: dict[str, Any], payload: dict[str, Any], **header: Any) -> str:
    """Sign like a legitimate issuer holding `document` (a private JWK)."""
    key = jwt.PyJWK(document, algorithm=document["alg"])
    headers = {"kid": document["kid"], "typ": "at+jwt", **header}
    return jwt.encode(payload, key.key, algorithm=document["alg"], headers=headers)


def forge_hmac(
    secret: bytes, payload: dict[str, Any], header: dict[str, Any], digest: Any = hashlib.sha256
) -> str:
    """An HS* token made by hand: attackers do not ask PyJWT for permission."""
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    signature = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


def unsigned(payload: dict[str, Any], header: dict[str, Any], signature: str = "") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{signature}"


__all__ = ["claims", "forge_hmac", "new_jwk", "ring_text", "sign_with", "unsigned"]
