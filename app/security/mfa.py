"""TOTP second factor (SPEC section 3): setup, enable, disable, the login challenge and its check.

Why it looks like this:
- The seed is the one secret the service must read back, so it is stored SEALED with the data
  ring (`DATA_KEYS`, AES-256-GCM), bound to its row and column
  (`field_context("users", "mfa_secret", user_id)`): a database dump holds ciphertext only, and a
  sealed seed copied onto another user does not open there. It is opened only to check a code.
- A code is accepted ONCE: the accepted time step is stored with one conditional UPDATE
  (`mfa_last_step IS NULL OR mfa_last_step < :step`), so of two replicas (or two requests)
  presenting the same code, exactly one moves the step forward. `totp.verify` never matches a
  step at or before the stored one, so an older code is refused too.
- Recovery codes (10, 80 bits each) are stored as hashes and used up with one conditional UPDATE
  (`used_at IS NULL`): single-use under concurrency as well.
- After a right password, an account with MFA on gets an `mfa_token` instead of tokens: a JWT of
  its own type (`mfa+jwt`, so it is never accepted as an access token and an access token is
  never accepted as one), signed by the JWT ring, valid `MFA_TOKEN_TTL_SECONDS`, and single-use
  (its `jti` is marked used in Redis, shared by replicas, once a code was accepted with it).
- Writes that depend on what was read (enabling the seed that was checked) compare the sealed
  value itself; `data reencrypt` may rewrite that value meanwhile (same seed, new ciphertext), so
  such a write retries against the re-read row when it still opens to the same seed.
Nothing here speaks HTTP; the routes (`app.api.routes.mfa`) map the errors below.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis
from sqlalchemy import ColumnElement, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import DATA_KEYS, Settings
from app.keys.data import DataKeyError, DataKeyRing, Sealed, SealedError, field_context
from app.keys.signing import KeyRingError, TokenRejected
from app.models import MfaRecoveryCode, User
from app.secrets import SecretStore
from app.security import totp
from app.security.errors import Unavailable
from app.security.tokens import LEEWAY_SECONDS, TokenService

logger = logging.getLogger("app.security.mfa")

Sessions = async_sessionmaker[AsyncSession]

MFA_TOKEN_TYPE = "mfa+jwt"  # noqa: S105 - a media type
MFA_TOKEN_TTL_SECONDS = 300
SEED_TABLE, SEED_COLUMN = "users", "mfa_secret"
#: Re-reads of a row whose sealed seed changed under a write (a re-encryption), at most.
_CAS_ATTEMPTS = 3

CodeKind = Literal["totp", "recovery"]


class AlreadyEnabled(Exception):
    """MFA is on already: setup (and enable) would replace a working second factor."""


class NotPending(Exception):
    """There is no setup to confirm (setup was not called, or MFA was disabled since)."""


class WrongCode(Exception):
    """The code does not match, was used already, or is older than one already used."""


@dataclass(frozen=True)
class Setup:
    secret: str
    otpauth_uri: str

    def __repr__(self) -> str:  # never the seed
        return "Setup(...)"


@dataclass(frozen=True)
class Challenge:
    """A verified, not yet used `mfa_token`."""

    user_id: str
    jti: str
    exp: float


def seed_context(user_id: uuid.UUID | str) -> bytes:
    return field_context(SEED_TABLE, SEED_COLUMN, user_id)


class Mfa:
    def __init__(
        self,
        settings: Settings,
        store: SecretStore,
        redis: Redis,
        prefix: str,
        tokens: TokenService,
    ) -> None:
        self.settings = settings
        self.store = store
        self.redis = redis
        self.used_prefix = f"{prefix}mfa-token-used:"
        self.tokens = tokens

    # ---- the data ring ------------------------------------------------------------------

    def ring(self) -> DataKeyRing:
        ring = self.store.parsed(DATA_KEYS)
        if ring is None:
            raise Unavailable("data key ring")
        return ring

    def _seal(self, seed: str, user_id: uuid.UUID) -> Sealed:
        try:
            return self.ring().seal(seed.encode("ascii"), seed_context(user_id))
        except DataKeyError:  # every key's nbf is in the future: refuse, never store plaintext
            logger.error("no DATA_KEYS key may encrypt now (every nbf is in the future)")
            raise Unavailable("data key ring") from None

    def _open(self, sealed: Sealed, user_id: uuid.UUID) -> str:
        try:
            return self.ring().open(sealed, seed_context(user_id)).decode("ascii")
        except SealedError as exc:
            # The kid was retired while values still used it, or the row was tampered with:
            # an operator must act. The message names a kid, never a value.
            logger.error("cannot open the TOTP seed of user %s: %s", user_id, exc)
            raise Unavailable("data key ring") from None

    # ---- setup, enable, disable ---------------------------------------------------------

    async def setup(self, sessions: Sessions, user_id: uuid.UUID, account: str) -> Setup:
        """A new seed, stored sealed as a PENDING setup (replacing an earlier pending one)."""
        seed = totp.new_secret()
        sealed = self._seal(seed, user_id)
        async with sessions() as session:
            stored = await session.execute(
                update(User)
                .where(User.id == user_id, User.mfa_enabled.is_(False))
                .values(mfa_secret=sealed, mfa_last_step=None)
                .returning(User.id)
            )
            if stored.scalar_one_or_none() is None:
                raise AlreadyEnabled()
            await session.commit()
        uri = totp.provisioning_uri(seed, account, self.settings.mfa_issuer)
        return Setup(seed, uri)

    async def enable(self, sessions: Sessions, user_id: uuid.UUID, code: str) -> list[str]:
        """Confirm the pending seed with a code; returns the recovery codes (shown once)."""
        for _ in range(_CAS_ATTEMPTS):
            async with sessions() as session:
                row = (
                    await session.execute(
                        select(User.mfa_secret, User.mfa_enabled, User.mfa_last_step).where(
                            User.id == user_id
                        )
                    )
                ).first()
            if row is not None and row.mfa_enabled:
                raise AlreadyEnabled()
            if row is None or row.mfa_secret is None:
                raise NotPending()
            seed = self._open(row.mfa_secret, user_id)
            step = totp.verify(seed, code, row.mfa_last_step)
            if step is None:
                raise WrongCode()
            codes = totp.new_recovery_codes()
            async with sessions() as session:
                enabled = await session.execute(
                    update(User)
                    .where(
                        User.id == user_id,
                        User.mfa_enabled.is_(False),
                        User.mfa_secret == row.mfa_secret,
                        _after(step),
                    )
                    .values(mfa_enabled=True, mfa_last_step=step)
                    .returning(User.id)
                )
                if enabled.scalar_one_or_none() is not None:
                    await _replace_codes(session, user_id, codes)
                    await session.commit()
                    return codes
            if not await self._same_seed_still_pending(sessions, user_id, seed):
                raise WrongCode()  # a new setup or a concurrent enable won: start over
        raise WrongCode()

    async def _same_seed_still_pending(
        self, sessions: Sessions, user_id: uuid.UUID, seed: str
    ) -> bool:
        async with sessions() as session:
            row = (
                await session.execute(
                    select(User.mfa_secret, User.mfa_enabled).where(User.id == user_id)
                )
            ).first()
        if row is None or row.mfa_enabled or row.mfa_secret is None:
            return False
        return hmac.compare_digest(self._open(row.mfa_secret, user_id), seed)

    async def disable(self, sessions: Sessions, user_id: uuid.UUID) -> bool:
        """Turn MFA off (or drop a pending setup): the seed and recovery codes are deleted.
        Returns whether it was on."""
        async with sessions() as session:
            was = await session.scalar(select(User.mfa_enabled).where(User.id == user_id))
            await session.execute(
                update(User)
                .where(User.id == user_id)
                .values(mfa_enabled=False, mfa_secret=None, mfa_last_step=None)
            )
            await session.execute(delete(MfaRecoveryCode).where(MfaRecoveryCode.user_id == user_id))
            await session.commit()
        return bool(was)

    # ---- checking a code at login -------------------------------------------------------

    async def check_code(
        self, sessions: Sessions, user_id: uuid.UUID, code: str
    ) -> CodeKind | None:
        """Accept `code` (a TOTP code or a recovery code) once, or None. An account without
        MFA on accepts nothing."""
        candidate = "".join(code.split())
        if candidate.isascii() and candidate.isdigit():
            return "totp" if await self._check_totp(sessions, user_id, candidate) else None
        canonical = totp.normalize_recovery_code(code)
        if canonical is None:
            return None
        async with sessions() as session:
            used = await session.execute(
                update(MfaRecoveryCode)
                .where(
                    MfaRecoveryCode.user_id == user_id,
                    MfaRecoveryCode.code_hash == totp.hash_recovery_code(canonical, user_id),
                    MfaRecoveryCode.used_at.is_(None),
                )
                .values(used_at=func.now())
                .returning(MfaRecoveryCode.id)
            )
            accepted = used.scalar_one_or_none() is not None
            await session.commit()
        return "recovery" if accepted else None

    async def _check_totp(self, sessions: Sessions, user_id: uuid.UUID, code: str) -> bool:
        async with sessions() as session:
            row = (
                await session.execute(
                    select(User.mfa_secret, User.mfa_last_step).where(
                        User.id == user_id, User.mfa_enabled.is_(True)
                    )
                )
            ).first()
        if row is None or row.mfa_secret is None:
            return False
        step = totp.verify(self._open(row.mfa_secret, user_id), code, row.mfa_last_step)
        if step is None:
            return False
        async with sessions() as session:
            # THE replay guard: only one request, on any replica, moves the step past `step`.
            moved = await session.execute(
                update(User)
                .where(User.id == user_id, User.mfa_enabled.is_(True), _after(step))
                .values(mfa_last_step=step)
                .returning(User.id)
            )
            accepted = moved.scalar_one_or_none() is not None
            await session.commit()
        return accepted

    # ---- the mfa_token ------------------------------------------------------------------

    def issue_challenge(self, user_id: uuid.UUID) -> str:
        now = int(time.time())
        claims = {
            "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience,
            "sub": str(user_id),
            "iat": now,
            "nbf": now,
            "exp": now + MFA_TOKEN_TTL_SECONDS,
            "jti": secrets.token_urlsafe(16),
        }
        try:
            return self.tokens.ring().sign(claims, MFA_TOKEN_TYPE, now)
        except KeyRingError:
            logger.error("no JWT key may sign now: every key's nbf is in the future")
            raise Unavailable("jwt signing key") from None

    async def open_challenge(self, token: str) -> Challenge:
        """A valid `mfa_token` that was not used yet, or TokenRejected."""
        claims = self.tokens.ring().verify(
            token,
            typ=MFA_TOKEN_TYPE,
            issuer=self.settings.jwt_issuer,
            audience=self.settings.jwt_audience,
            leeway=LEEWAY_SECONDS,
        )
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= time.time():
            raise TokenRejected("expired")
        challenge = Challenge(str(claims["sub"]), str(claims["jti"]), float(exp))
        if await self.redis.exists(self.used_prefix + challenge.jti):
            raise TokenRejected("used")
        return challenge

    async def use_challenge(self, challenge: Challenge) -> bool:
        """Mark the token used (on every replica); False when another request did first."""
        marked = await self.redis.set(
            self.used_prefix + challenge.jti, "1", nx=True, exat=int(challenge.exp) + 1
        )
        return bool(marked)


def _after(step: int) -> ColumnElement[bool]:
    return or_(User.mfa_last_step.is_(None), User.mfa_last_step < step)


async def _replace_codes(session: AsyncSession, user_id: uuid.UUID, codes: list[str]) -> None:
    await session.execute(delete(MfaRecoveryCode).where(MfaRecoveryCode.user_id == user_id))
    await session.execute(
        insert(MfaRecoveryCode),
        [
            {
                "id": uuid.uuid4(),
                "user_id": user_id,
                "code_hash": totp.hash_recovery_code(c, user_id),
            }
            for c in codes
        ],
    )
