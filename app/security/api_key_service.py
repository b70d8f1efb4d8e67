"""Authenticating API keys at a cost close to a JWT's, and revoking them on every replica at once.

The format, generation and hashing are `app.security.api_keys` (pure). This is the run-time
side, built like the access-token path (`app.security.tokens`):
- a verified key is cached in process for `CACHE_TTL_SECONDS`, keyed by its SHA-256 (never the
  plaintext), bounded: a hit costs one hash and one dict lookup (the key was parsed and matched
  when it was cached). On a miss, `parse` refuses a malformed or mistyped key (prefix, length,
  alphabet, CRC32) before any lookup; then one indexed lookup by the public `lookup_id` and a
  constant-time comparison of the stored hash;
- revocation is checked on EVERY request against the shared revocation list (the local mirror
  while its channel is live, else Redis, failing closed): deleting a key publishes `key:<id>`
  until every replica's cached copy has expired (`CACHE_TTL_SECONDS` plus a margin), after which
  the row is simply gone;
- expiry is checked on every request; the owner (active? role?) is checked by the caller through
  the user status cache, so a disabled or deleted owner's keys are refused at once, and a key's
  scopes are always cut down to what the owner's role grants NOW;
- `last_used_at` is written at most once per `LAST_USED_RESOLUTION_SECONDS` per key and replica,
  by a conditional UPDATE that also skips rows another replica touched within that time.
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.keys.signing import TokenRejected
from app.models import ApiKey
from app.security import api_keys
from app.security.revocation import RevocationList
from app.security.tokens import AccessClaims

logger = logging.getLogger("app.security.api_keys")

Sessions = async_sessionmaker[AsyncSession]

CACHE_TTL_SECONDS = 30.0
CACHE_SIZE = 10_000
LAST_USED_RESOLUTION_SECONDS = 60.0
#: Added to the revocation entry's lifetime: clock skew between replicas, and a read that
#: started just before the DELETE committed.
REVOCATION_MARGIN_SECONDS = 5.0


def revocation_member(key_id: uuid.UUID | str) -> str:
    return f"key:{key_id}"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What authenticating needs of an `api_keys` row (no hash, no name)."""

    id: uuid.UUID
    owner_id: uuid.UUID
    scopes: frozenset[str]
    expires_at: float | None  # epoch seconds
    member: str = ""  # its revocation-list member, `key:<id>`
    sub: str = ""  # the owner id as text (claims, the user status cache)

    def claims(self, granted: frozenset[str]) -> AccessClaims:
        """The request's claims: the key's scopes that the owner's role grants now."""
        return AccessClaims(
            sub=self.sub,
            jti=self.member,
            sid=None,
            exp=self.expires_at if self.expires_at is not None else float("inf"),
            claims={"api_key": str(self.id)},
            scopes=self.scopes & granted,
            api_key_id=str(self.id),
        )


class VerifiedKey:
    """A key found and matched: its record, and its claims per grant (made once: they are
    immutable, and building them per request would be a measurable share of the cost)."""

    __slots__ = ("_claims", "record")

    def __init__(self, record: KeyRecord) -> None:
        self.record = record
        self._claims: dict[frozenset[str], AccessClaims] = {}

    def claims(self, granted: frozenset[str]) -> AccessClaims:
        found = self._claims.get(granted)
        if found is None:
            found = self._claims[granted] = self.record.claims(granted)
        return found


@dataclass(slots=True)
class _Cached:
    verified: VerifiedKey
    read_at: float  # monotonic, when the row was read
    written_at: float  # monotonic, when this replica last wrote last_used_at (or -inf)


class ApiKeyService:
    def __init__(
        self,
        revocations: RevocationList,
        *,
        ttl: float = CACHE_TTL_SECONDS,
        size: int = CACHE_SIZE,
    ) -> None:
        self.revocations = revocations
        self.ttl = ttl
        self.size = size
        self._items: OrderedDict[str, _Cached] = OrderedDict()
        # Built once: per-call statement construction would cost more than the lookup itself.
        self._lookup = select(
            ApiKey.id, ApiKey.owner_id, ApiKey.key_hash, ApiKey.scopes, ApiKey.expires_at
        ).where(ApiKey.lookup_id == bindparam("lookup_id"))

    def __len__(self) -> int:
        return len(self._items)

    async def authenticate(self, sessions: Sessions, key: str) -> VerifiedKey:
        """The key, found and matched, or TokenRejected (malformed, unknown, expired or
        revoked). The caller still checks the owner."""
        if len(key) != api_keys.KEY_LENGTH:
            raise TokenRejected("malformed API key")
        digest = api_keys.hash_key(key)
        now = time.monotonic()
        cached = self._items.get(digest)
        if cached is None or now - cached.read_at >= self.ttl:
            try:
                parsed = api_keys.parse(key)
            except api_keys.InvalidApiKey:
                raise TokenRejected("malformed API key") from None
            cached = await self._read(sessions, parsed.lookup_id, digest, now, cached)
        else:
            self._items.move_to_end(digest)
        record = cached.verified.record
        if record.expires_at is not None and record.expires_at <= time.time():
            raise TokenRejected("expired API key")
        if await self.revocations.is_revoked((record.member,)):
            raise TokenRejected("revoked API key")
        if now - cached.written_at >= LAST_USED_RESOLUTION_SECONDS:
            cached.written_at = now
            await self._touch(sessions, record.id)
        return cached.verified

    async def _read(
        self,
        sessions: Sessions,
        lookup_id: str,
        digest: str,
        now: float,
        stale: _Cached | None,
    ) -> _Cached:
        self._items.pop(digest, None)
        async with sessions() as session:
            row = (await session.execute(self._lookup, {"lookup_id": lookup_id})).first()
        if row is None or not hmac.compare_digest(row.key_hash, digest):
            raise TokenRejected("unknown API key")
        expires = row.expires_at.timestamp() if row.expires_at is not None else None
        record = KeyRecord(
            row.id,
            row.owner_id,
            frozenset(row.scopes),
            expires,
            revocation_member(row.id),
            str(row.owner_id),
        )
        written = stale.written_at if stale is not None else float("-inf")
        cached = _Cached(VerifiedKey(record), now, written)
        self._items[digest] = cached
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return cached

    async def _touch(self, sessions: Sessions, key_id: uuid.UUID) -> None:
        """`last_used_at = now()`, unless another replica wrote it within the resolution."""
        recently = func.now() - timedelta(seconds=LAST_USED_RESOLUTION_SECONDS)
        async with sessions() as session:
            await session.execute(
                update(ApiKey)
                .where(
                    ApiKey.id == key_id,
                    or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < recently),
                )
                .values(last_used_at=func.now())
            )
            await session.commit()

    async def revoke(self, key_id: uuid.UUID) -> None:
        """Refuse `key_id` at once on every replica (call after deleting its row): the entry
        outlives every cached copy, after which lookups find no row."""
        until = time.time() + self.ttl + REVOCATION_MARGIN_SECONDS
        await self.revocations.revoke({revocation_member(key_id): until})


def expiry(days: int | None, now: datetime | None = None) -> datetime | None:
    """When a key made now with `expires_in_days=days` expires (None: never)."""
    if days is None:
        return None
    return (now or datetime.now(UTC)) + timedelta(days=days)
