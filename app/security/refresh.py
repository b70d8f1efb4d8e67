"""Refresh tokens: opaque random strings, stored hashed in Redis, rotated on every use.

Auth0's "token family" model: a login starts a family; each refresh consumes the presented token
and issues the next one. The check-and-consume is ONE Lua script, so of two concurrent uses of
the same token at most one wins. Presenting a token that was already consumed is treated as theft:
the whole family is revoked. A family also has an absolute maximum age, whatever its refreshes.

A refresh token looks like `<family id>.<secret>` (two dot-separated parts), so it can never be
mistaken for a JWT access token (three parts), and vice versa. Only its SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Literal

from redis.asyncio import Redis

_TOKEN_SHAPE = re.compile(r"^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$")

# KEYS[1] family hash, KEYS[2] set of consumed hashes
# ARGV: presented hash, next hash, now, refresh ttl, family max age
_ROTATE = """
local fam = redis.call('HMGET', KEYS[1], 'user', 'created', 'current', 'current_exp', 'revoked')
if not fam[1] then return {'invalid'} end
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
local exp = math.min(now + tonumber(ARGV[4]), deadline)
redis.call('HSET', KEYS[1], 'current', ARGV[2], 'current_exp', tostring(exp))
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


class RefreshFamilies:
    def __init__(self, redis: Redis, prefix: str, *, token_ttl: int, family_max_age: int) -> None:
        self.redis = redis
        self.prefix = f"{prefix}refresh:"
        self.token_ttl = token_ttl
        self.family_max_age = family_max_age
        self._rotate = redis.register_script(_ROTATE)
        self._owner = redis.register_script(_OWNER)

    def _keys(self, family: str) -> list[str]:
        return [f"{self.prefix}family:{family}", f"{self.prefix}used:{family}"]

    @staticmethod
    def _new_token(family: str) -> str:
        return f"{family}.{secrets.token_urlsafe(32)}"

    async def start(self, user_id: str) -> tuple[str, str]:
        """Start a family for a login; return (refresh token, family id)."""
        family = secrets.token_urlsafe(16)
        token = self._new_token(family)
        now = time.time()
        family_key = self._keys(family)[0]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                family_key,
                mapping={
                    "user": user_id,
                    "created": repr(now),
                    "current": _digest(token),
                    "current_exp": repr(now + min(self.token_ttl, self.family_max_age)),
                    "revoked": "0",
                },
            )
            pipe.expire(family_key, self.family_max_age + 60)
            await pipe.execute()
        return token, family

    async def rotate(self, token: str) -> Rotation:
        family = family_of(token)
        if family is None:
            return Rotation("invalid")
        following = self._new_token(family)
        keys = self._keys(family)
        result = await self._rotate(
            keys=keys,
            args=[
                _digest(token),
                _digest(following),
                repr(time.time()),
                self.token_ttl,
                self.family_max_age,
            ],
        )
        if result and _text(result[0]) == "ok":
            await self.redis.expire(keys[1], self.family_max_age + 60)
        outcome = _text(result[0])
        user_id = _text(result[1]) if len(result) > 1 else None
        if outcome == "ok":
            return Rotation("ok", family, user_id, following)
        if outcome in {"revoked", "reused", "expired"}:
            return Rotation(outcome, family, user_id)  # type: ignore[arg-type]
        return Rotation("invalid")

    async def owner(self, token: str) -> tuple[str, str] | None:
        """(family, user id) if `token` is, or was, a token of a live family."""
        family = family_of(token)
        if family is None:
            return None
        user = await self._owner(keys=self._keys(family), args=[_digest(token)])
        return (family, _text(user)) if user else None

    async def revoke(self, family: str) -> None:
        family_key = self._keys(family)[0]
        # Only mark a family that exists: never create a key for an arbitrary id.
        if await self.redis.exists(family_key):
            await self.redis.hset(family_key, "revoked", "1")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
