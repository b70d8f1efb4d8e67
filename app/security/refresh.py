"""Refresh tokens: opaque random strings, stored hashed in Redis, rotated on every use.

Auth0's "token family" model: a login starts a family; each refresh consumes the presented token
and issues the next one. The check-and-consume is ONE Lua script, so of two concurrent uses of
the same token at most one wins. Presenting a token that was already consumed is treated as theft:
the whole family is revoked. A family also has an absolute maximum age, whatever its refreshes.

A refresh token looks like `<family id>.<secret>` (two dot-separated parts), so it can never be
mistaken for a JWT access token (three parts), and vice versa. Only its SHA-256 is stored.

Redis is a trust boundary: a family record carries an HMAC (under a key derived from the JWT
ring, with the kid that made it) over its identity and current state, so someone able to write to
Redis cannot forge a family for a user nor swap in a token of their own; a record that does not
verify is refused. The script only writes when the record is still exactly the state that was
verified (compare-and-set on the MAC).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from redis.asyncio import Redis

_TOKEN_SHAPE = re.compile(r"^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$")
_FIELDS = ("user", "created", "current", "current_exp", "revoked", "kid", "mac")

# KEYS[1] family hash, KEYS[2] set of consumed hashes
# ARGV: presented hash, next hash, now, next exp, family max age, verified mac, next kid, next mac
_ROTATE = """
local fam = redis.call('HMGET', KEYS[1], 'user', 'created', 'current', 'current_exp', 'revoked',
                       'mac')
if not fam[1] then return {'invalid'} end
if fam[6] ~= ARGV[6] then return {'invalid'} end
if fam[5] == '1' then return {'revoked', fam[1]} end
local now = tonumber(ARGV[3])
if fam[3] ~= ARGV[1] then
  if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
    redis.call('HSET', KEYS[1], 'revoked', '1')
    return {'reused', fam[1]}
  end
  return {'invalid'}
end
local deadline = tonumber(fam[2]) + tonumber(ARGV[5])
if now >= deadline then
  redis.call('HSET', KEYS[1], 'revoked', '1')
  return {'expired', fam[1]}
end
if now >= tonumber(fam[4]) then return {'expired', fam[1]} end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'current', ARGV[2], 'current_exp', ARGV[4], 'kid', ARGV[7],
           'mac', ARGV[8])
return {'ok', fam[1]}
"""

# KEYS[1] family hash, KEYS[2] consumed set; ARGV: presented hash -> user id if it belongs
_OWNER = """
local fam = redis.call('HMGET', KEYS[1], 'user', 'current')
if not fam[1] then return false end
if fam[2] == ARGV[1] or redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return fam[1] end
return false
"""

Outcome = Literal["ok", "invalid", "revoked", "reused", "expired"]

#: `kid=None`: the key that signs now; else that kid's key, or None when it left the ring.
MacKeys = Callable[[str | None], tuple[str, bytes] | None]

MAC_PURPOSE = "refresh-family"


@dataclass(frozen=True)
class Rotation:
    outcome: Outcome
    family: str | None = None
    user_id: str | None = None
    token: str | None = field(default=None, repr=False)  # the next refresh token: a credential


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def family_of(token: str) -> str | None:
    """The family id embedded in a well-formed refresh token, else None."""
    match = _TOKEN_SHAPE.match(token) if isinstance(token, str) else None
    return match.group(1) if match else None


def _mac(key: bytes, family: str, user: str, created: str, current: str, exp: str) -> str:
    message = "\0".join((family, user, created, current, exp)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


class RefreshFamilies:
    def __init__(
        self, redis: Redis, prefix: str, *, token_ttl: int, family_max_age: int, keys: MacKeys
    ) -> None:
        self.redis = redis
        self.prefix = f"{prefix}refresh:"
        self.token_ttl = token_ttl
        self.family_max_age = family_max_age
        self._mac_key = keys
        self._rotate = redis.register_script(_ROTATE)
        self._owner = redis.register_script(_OWNER)

    def _keys(self, family: str) -> list[str]:
        return [f"{self.prefix}family:{family}", f"{self.prefix}used:{family}"]

    def _user_key(self, user_id: str) -> str:
        return f"{self.prefix}user:{user_id}"

    @staticmethod
    def _new_token(family: str) -> str:
        return f"{family}.{secrets.token_urlsafe(32)}"

    def _signing(self) -> tuple[str, bytes]:
        found = self._mac_key(None)
        if found is None:  # a ring whose signing key holds no secret material cannot happen
            raise RuntimeError("no key to authenticate refresh families")
        return found

    async def start(self, user_id: str) -> tuple[str, str]:
        """Start a family for a login; return (refresh token, family id)."""
        family = secrets.token_urlsafe(16)
        token = self._new_token(family)
        now = time.time()
        created, exp = repr(now), repr(now + min(self.token_ttl, self.family_max_age))
        kid, key = self._signing()
        family_key = self._keys(family)[0]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                family_key,
                mapping={
                    "user": user_id,
                    "created": created,
                    "current": _digest(token),
                    "current_exp": exp,
                    "revoked": "0",
                    "kid": kid,
                    "mac": _mac(key, family, user_id, created, _digest(token), exp),
                },
            )
            pipe.expire(family_key, self.family_max_age + 60)
            # The user's families, so that "sign out everywhere" can find them all.
            pipe.sadd(self._user_key(user_id), family)
            pipe.expire(self._user_key(user_id), self.family_max_age + 60)
            await pipe.execute()
        return token, family

    async def families_of(self, user_id: str) -> list[str]:
        """Every family started for `user_id` within the maximum family age (some may be over)."""
        members = await self.redis.smembers(self._user_key(user_id))
        return sorted(_text(m) for m in members)

    async def _verified(self, family: str) -> tuple[str, float, str] | None:
        """The record's MAC, creation time and user if the record is authentic, else None."""
        raw = await self.redis.hmget(self._keys(family)[0], list(_FIELDS))
        user, created, current, exp, _revoked, kid, mac = (_text(v) for v in raw)
        if not (user and created and current and exp and kid and mac):
            return None
        found = self._mac_key(kid)
        if found is None:
            return None  # its key left the ring: the family is over
        expected = _mac(found[1], family, user, created, current, exp)
        if not hmac.compare_digest(expected, mac):
            return None
        return mac, float(created), user

    async def rotate(self, token: str) -> Rotation:
        family = family_of(token)
        if family is None:
            return Rotation("invalid")
        verified = await self._verified(family)
        if verified is None:
            return Rotation("invalid")
        mac, created, user = verified
        following = self._new_token(family)
        now = time.time()
        exp = repr(min(now + self.token_ttl, created + self.family_max_age))
        kid, key = self._signing()
        next_mac = _mac(key, family, user, repr(created), _digest(following), exp)
        keys = self._keys(family)
        result = await self._rotate(
            keys=keys,
            args=[
                _digest(token), _digest(following), repr(now), exp, self.family_max_age,
                mac, kid, next_mac,
            ],
        )  # fmt: skip
        outcome = _text(result[0])
        user_id = _text(result[1]) if len(result) > 1 else None
        if outcome == "ok":
            await self.redis.expire(keys[1], self.family_max_age + 60)
            return Rotation("ok", family, user_id, following)
        if outcome in {"revoked", "reused", "expired"}:
            return Rotation(outcome, family, user_id)  # type: ignore[arg-type]
        return Rotation("invalid")

    async def owner(self, token: str) -> tuple[str, str] | None:
        """(family, user id) if `token` is, or was, a token of a live, authentic family."""
        family = family_of(token)
        if family is None or await self._verified(family) is None:
            return None
        user = await self._owner(keys=self._keys(family), args=[_digest(token)])
        return (family, _text(user)) if user else None

    async def revoke(self, family: str) -> None:
        family_key = self._keys(family)[0]
        # Only mark a family that exists: never create a key for an arbitrary id.
        if await self.redis.exists(family_key):
            await self.redis.hset(family_key, "revoked", "1")


def _text(value: object) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)
