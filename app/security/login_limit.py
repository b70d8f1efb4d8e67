"""The per-account failed-login limit, shared by every replica through Redis.

Every attempt is COUNTED BEFORE its password is checked, in one Lua script: past the limit the
attempt is refused without any argon2 work, so a burst of concurrent guesses gets at most
`max_failures` passwords checked per window, whatever the concurrency. A successful login then
gives its own count back. Three keys, all under the app's Redis prefix:
- failures per (account, client): what locks out. An attacker's guesses from one address lock
  that address out of the account, not the owner signing in from elsewhere;
- failures per account, whatever the client: a ceiling (`ACCOUNT_CEILING_FACTOR` x the limit)
  against guesses spread over many addresses; past it the account is locked for everyone for
  the rest of the window, which is the price of not letting a botnet guess freely;
- attempts in flight per account: at most `MAX_IN_FLIGHT` passwords of one account are checked
  at the same time, so one account cannot occupy every hashing thread.
Unknown accounts are counted exactly like real ones (answers never tell them apart), and the
account and client appear in key names only as keyed hashes (`Identities`).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

#: The per-account ceiling, as a multiple of the per-(account, client) limit.
ACCOUNT_CEILING_FACTOR = 10
#: Passwords of one account checked at the same time, at most.
MAX_IN_FLIGHT = 4
#: An attempt that never reported back (a crashed worker) stops counting as in flight after this.
IN_FLIGHT_TTL_SECONDS = 30

# KEYS: per (account, client) failures, per account failures, per account in flight.
# ARGV: limit, ceiling, window seconds, max in flight, in-flight ttl.
# Returns {0, retry after} when refused (limit or ceiling), {1, 1} when busy, {2, 0} when counted.
_BEGIN = """
local limit, ceiling = tonumber(ARGV[1]), tonumber(ARGV[2])
local window, flying, flight_ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
for i, cap in ipairs({limit, ceiling}) do
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  if count >= cap then
    local ttl = redis.call('TTL', KEYS[i])
    if ttl < 1 then ttl = window end
    return {0, ttl}
  end
end
if tonumber(redis.call('GET', KEYS[3]) or '0') >= flying then return {1, 1} end
for i = 1, 2 do
  redis.call('INCR', KEYS[i])
  if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], window) end
end
redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], flight_ttl)
return {2, 0}
"""

# KEYS as above; ARGV[1] = 1 when the login succeeded (its count is given back and this client's
# failures are cleared), 2 when its step succeeded but the login is not complete yet (a right
# password before the second factor: only its own count is given back), 0 when it failed.
_FINISH = """
if tonumber(redis.call('GET', KEYS[3]) or '0') > 0 then redis.call('DECR', KEYS[3]) end
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[1])
  if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
elseif ARGV[1] == '2' then
  for i = 1, 2 do
    if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then redis.call('DECR', KEYS[i]) end
  end
end
return 1
"""


@dataclass(frozen=True)
class Attempt:
    """The outcome of `LoginLimiter.begin`: counted (go on and check the password), or refused
    with the seconds after which to retry (`busy`: too many checks of this account at once)."""

    keys: tuple[str, str, str]
    allowed: bool
    retry_after: int = 0
    busy: bool = False


class LoginLimiter:
    def __init__(self, redis: Redis, prefix: str, *, max_failures: int, window: int) -> None:
        self.redis = redis
        self.prefix = f"{prefix}login:"
        self.max_failures = max_failures
        self.window = window
        self._begin = redis.register_script(_BEGIN)
        self._finish = redis.register_script(_FINISH)

    def _keys(self, account_key: str, client_key: str) -> tuple[str, str, str]:
        return (
            f"{self.prefix}failures:{account_key}:{client_key}",
            f"{self.prefix}failures:{account_key}",
            f"{self.prefix}in-flight:{account_key}",
        )

    async def begin(self, account_key: str, client_key: str) -> Attempt:
        """Count an attempt on `account_key` from `client_key` (keyed hashes) before its
        password is checked; refuse it past the limit or when too many are in flight."""
        keys = self._keys(account_key, client_key)
        verdict, retry = await self._begin(
            keys=list(keys),
            args=[
                self.max_failures,
                self.max_failures * ACCOUNT_CEILING_FACTOR,
                self.window,
                MAX_IN_FLIGHT,
                IN_FLIGHT_TTL_SECONDS,
            ],
        )
        code = int(verdict)
        return Attempt(keys, allowed=code == 2, retry_after=max(int(retry), 1), busy=code == 1)

    async def finish(self, attempt: Attempt, *, succeeded: bool, partial: bool = False) -> None:
        """The password (or code) check is over; a success gives its count back and clears this
        client's failures on the account. `partial`: the check succeeded but the login needs a
        second factor, so only this attempt's count is given back: earlier failures stay, or a
        right password would reset the count of wrong codes guessed after it."""
        if attempt.allowed:
            outcome = ("2" if partial else "1") if succeeded else "0"
            await self._finish(keys=list(attempt.keys), args=[outcome])
