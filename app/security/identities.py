"""Keyed hashes of who is acting: an account (email) and a client (IP address).

Emails in audit lines and in Redis key names, and client addresses in rate-limit keys, are
HMAC-SHA256 under a server key, not bare SHA-256: a bare hash of an email is reversed by hashing
a list of addresses, so a log or Redis reader would learn who tried to sign in. The key is derived
from the JWT ring's signing key (`KeyRing.derived_key`), so it needs no secret of its own; after a
rotation the hashes change, which restarts rate-limit windows and audit correlation (documented).
"""

from __future__ import annotations

import hashlib
import hmac

from app.config import JWT_KEYS
from app.secrets import SecretStore
from app.security.errors import Unavailable

PURPOSE = "identities"


class Identities:
    def __init__(self, store: SecretStore) -> None:
        self.store = store

    def _key(self) -> bytes:
        ring = self.store.parsed(JWT_KEYS)
        derived = ring.derived_key(PURPOSE) if ring is not None else None
        if derived is None:
            raise Unavailable("jwt key ring")
        return derived[1]

    def _hash(self, kind: str, value: str) -> str:
        digest = hmac.new(self._key(), f"{kind}\0{value}".encode(), hashlib.sha256)
        return digest.hexdigest()[:32]

    def account(self, email: str) -> str:
        """The account's keyed hash (give it the canonical email)."""
        return self._hash("account", email)

    def client(self, address: str | None) -> str:
        return self._hash("client", address or "-")
