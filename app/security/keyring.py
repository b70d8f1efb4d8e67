"""JWT key ring (first slice: parsing and strength checks; signing/verification land with the
token service). See SPEC section 4 for the format."""

from __future__ import annotations

import json
from dataclasses import dataclass

from jwt.api_jwk import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKError, PyJWKSetError


class KeyRingError(ValueError):
    """The ring cannot be used. Messages name the problem and the kid, never key material."""


@dataclass(frozen=True)
class KeyRing:
    keys: tuple[PyJWK, ...]
    raw_hmac: tuple[bytes, ...] = ()

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        stripped = text.strip()
        if stripped.startswith("{"):
            try:
                document = json.loads(stripped)
                jwks = PyJWKSet.from_dict(document)
            except (ValueError, PyJWKError, PyJWKSetError) as exc:
                raise KeyRingError(f"not a usable JWK Set ({type(exc).__name__})") from None
            return cls(tuple(jwks.keys))
        secrets = tuple(line.encode() for line in text.splitlines() if line.strip())
        if not secrets:
            raise KeyRingError("holds no key")
        return cls((), secrets)

    def weak_key_problems(self) -> list[str]:
        from app.secrets.policy import is_placeholder

        problems = []
        for index, secret in enumerate(self.raw_hmac, start=1):
            if is_placeholder(secret.decode(errors="replace")):
                problems.append(f"key {index} is a known placeholder; production refuses it")
            elif len(secret) < 32:
                problems.append(f"key {index} is an HMAC key shorter than 32 bytes")
        return problems
