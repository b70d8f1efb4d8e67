"""The token service: issue and check access tokens, start/rotate/revoke refresh families.

Access tokens are JWTs with header `typ: at+jwt` (RFC 9068) signed by the ring's current signing
key; they carry `iss aud sub iat nbf exp jti` and `sid` (the refresh family of the login, so a
logout or a detected refresh-token theft can revoke every access token of that session).

Two things keep the hot path cheap without weakening anything:
- the key ring is the store's parsed `JWT_KEYS` value (parsed once per value, on rotation);
- verified tokens are cached by their exact string, bounded, tied to the ring that verified them
  and honouring `exp`; revocation is checked on EVERY request (against the local mirror while the
  revocation channel is live, otherwise against Redis, failing closed).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from app.config import JWT_KEYS, Settings
from app.keys.signing import KeyRing, KeyRingError, TokenRejected
from app.secrets import SecretStore
from app.security import scopes
from app.security.errors import Unavailable
from app.security.refresh import RefreshFamilies, Rotation
from app.security.revocation import RevocationList

logger = logging.getLogger("app.security.tokens")

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - RFC 9068 media type
#: Clock skew tolerated for `iat`/`nbf` between replicas; `exp` is enforced without leeway.
LEEWAY_SECONDS = 5.0
VERIFIED_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class AccessClaims:
    sub: str
    jti: str
    sid: str | None
    exp: float
    claims: dict[str, Any]
    scopes: frozenset[str] = frozenset()
    #: Set when the request authenticated with an API key (`jti` is then `key:<id>`).
    api_key_id: str | None = None

    @property
    def revocation_members(self) -> tuple[str, ...]:
        if self.api_key_id is not None:
            return (self.jti,)
        if self.sid is None:
            return (f"jti:{self.jti}",)
        return (f"jti:{self.jti}", f"sid:{self.sid}")


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str = field(repr=False)  # credentials: never in a repr or a log line
    refresh_token: str = field(repr=False)
    expires_in: int


class VerifiedTokens:
    """Bounded cache: exact token string -> claims, valid for the ring that verified it."""

    def __init__(self, size: int = VERIFIED_CACHE_SIZE) -> None:
        self.size = size
        self._ring: KeyRing | None = None
        self._items: OrderedDict[str, AccessClaims] = OrderedDict()

    def get(self, token: str, ring: KeyRing, now: float) -> AccessClaims | None:
        if ring is not self._ring:
            self._items.clear()
            self._ring = ring
            return None
        found = self._items.get(token)
        if found is None:
            return None
        if found.exp <= now:
            del self._items[token]
            return None
        return found

    def put(self, token: str, ring: KeyRing, claims: AccessClaims) -> None:
        if ring is not self._ring:
            self._items.clear()
            self._ring = ring
        self._items[token] = claims
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class TokenService:
    def __init__(
        self,
        settings: Settings,
        store: SecretStore,
        revocations: RevocationList,
        families: RefreshFamilies,
    ) -> None:
        self.settings = settings
        self.store = store
        self.revocations = revocations
        self.families = families
        self.verified = VerifiedTokens()

    def ring(self) -> KeyRing:
        """The current key ring (the store swaps in a new one on rotation)."""
        ring = self.store.parsed(JWT_KEYS)
        if ring is None:
            raise Unavailable("jwt key ring")
        return ring

    # ---- issuing ------------------------------------------------------------------------

    def issue_access(self, user_id: str, sid: str | None, scope: str = "") -> str:
        """An access token; `scope` is the space-separated scopes the user holds now (RFC 8693
        `scope` claim: `admin` for admins, empty for everyone else)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience,
            "sub": user_id,
            "iat": now,
            "nbf": now,
            "exp": now + self.settings.access_token_ttl_seconds,
            "jti": secrets.token_urlsafe(16),
            "scope": scope,
        }
        if sid is not None:
            claims["sid"] = sid
        try:
            return self.ring().sign(claims, ACCESS_TOKEN_TYPE, now)
        except KeyRingError:
            logger.error("no JWT key may sign now: every key's nbf is in the future")
            raise Unavailable("jwt signing key") from None

    async def login(self, user_id: str, scope: str = "") -> IssuedTokens:
        """A new session: a refresh family and the first pair."""
        refresh_token, family = await self.families.start(user_id)
        return IssuedTokens(
            self.issue_access(user_id, family, scope),
            refresh_token,
            self.settings.access_token_ttl_seconds,
        )

    async def rotate(self, refresh_token: str) -> Rotation:
        """Consume `refresh_token`; a reused one revokes its whole session. The caller checks
        the user is still allowed in, then asks for the pair (`continued`)."""
        rotation = await self.families.rotate(refresh_token)
        if rotation.outcome == "reused" and rotation.family is not None:
            # A consumed token came back: someone holds a stolen copy. Kill the session.
            await self.revoke_session(rotation.family)
        return rotation

    def continued(self, rotation: Rotation, scope: str = "") -> IssuedTokens:
        """The pair that continues a successful rotation."""
        if rotation.outcome != "ok" or rotation.user_id is None or rotation.token is None:
            raise ValueError("only a successful rotation continues a session")
        access = self.issue_access(rotation.user_id, rotation.family, scope)
        return IssuedTokens(access, rotation.token, self.settings.access_token_ttl_seconds)

    # ---- checking -----------------------------------------------------------------------

    def verify_access(self, token: str) -> AccessClaims:
        """Signature and claims only (no revocation). Raises TokenRejected."""
        ring = self.ring()
        now = time.time()
        cached = self.verified.get(token, ring, now)
        if cached is not None:
            return cached
        claims = ring.verify(
            token,
            typ=ACCESS_TOKEN_TYPE,
            issuer=self.settings.jwt_issuer,
            audience=self.settings.jwt_audience,
            leeway=LEEWAY_SECONDS,
        )
        exp = claims["exp"]
        if not isinstance(exp, int | float) or exp <= now:
            raise TokenRejected("expired")
        sid = claims.get("sid")
        checked = AccessClaims(
            sub=claims["sub"],
            jti=claims["jti"],
            sid=sid if isinstance(sid, str) else None,
            exp=float(exp),
            claims=claims,
            scopes=scopes.parse(claims.get("scope")),
        )
        self.verified.put(token, ring, checked)
        return checked

    async def authenticate(self, token: str) -> AccessClaims:
        """A valid, unrevoked access token's claims, or TokenRejected / Unavailable."""
        claims = self.verify_access(token)
        if await self.revocations.is_revoked(claims.revocation_members):
            raise TokenRejected("revoked")
        return claims

    # ---- revoking -----------------------------------------------------------------------

    def _session_horizon(self) -> float:
        # Every access token of a session expires by then (none are issued once it is revoked).
        return time.time() + self.settings.access_token_ttl_seconds + LEEWAY_SECONDS + 1

    async def revoke_session(self, family: str) -> None:
        await self.families.revoke(family)
        await self.revocations.revoke({f"sid:{family}": self._session_horizon()})

    async def revoke_user(self, user_id: str, *, keep: str | None = None) -> None:
        """End every session of `user_id` (but `keep`) on every replica: each refresh family
        is revoked and its access tokens refused at once (password change or reset, account
        deleted, disabled, or its role changed)."""
        families = [f for f in await self.families.families_of(user_id) if f != keep]
        for family in families:
            await self.families.revoke(family)
        if families:
            horizon = self._session_horizon()
            await self.revocations.revoke({f"sid:{family}": horizon for family in families})

    async def logout(self, claims: AccessClaims, refresh_token: str | None) -> None:
        entries = {f"jti:{claims.jti}": claims.exp}
        families = set()
        if claims.sid is not None:
            families.add(claims.sid)
        if refresh_token:
            owned = await self.families.owner(refresh_token)
            if owned is not None and owned[1] == claims.sub:
                families.add(owned[0])
        for family in families:
            await self.families.revoke(family)
            entries[f"sid:{family}"] = self._session_horizon()
        await self.revocations.revoke(entries)
