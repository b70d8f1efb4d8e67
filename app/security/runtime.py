"""Everything the auth API needs at run time, built by the app's lifespan (never at import)."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from app.config import JWT_KEYS, Settings
from app.secrets import SecretStore
from app.security.api_key_service import ApiKeyService
from app.security.identities import Identities
from app.security.login_limit import LoginLimiter
from app.security.mfa import Mfa
from app.security.passwords import PasswordHasher
from app.security.rate_limits import RateLimits
from app.security.refresh import MAC_PURPOSE, RefreshFamilies
from app.security.revocation import RevocationList
from app.security.tokens import TokenService


@dataclass
class Security:
    tokens: TokenService
    revocations: RevocationList
    families: RefreshFamilies
    passwords: PasswordHasher
    login_limit: LoginLimiter
    rate_limits: RateLimits
    identities: Identities
    mfa: Mfa
    api_keys: ApiKeyService

    @classmethod
    def create(cls, settings: Settings, store: SecretStore, redis: Redis) -> Security:
        prefix = settings.redis_key_prefix
        revocations = RevocationList(redis, prefix)

        def family_keys(kid: str | None) -> tuple[str, bytes] | None:
            ring = store.parsed(JWT_KEYS)
            return ring.derived_key(MAC_PURPOSE, kid) if ring is not None else None

        families = RefreshFamilies(
            redis,
            prefix,
            token_ttl=settings.refresh_token_ttl_seconds,
            family_max_age=settings.refresh_family_max_age_seconds,
            keys=family_keys,
        )
        tokens = TokenService(settings, store, revocations, families)
        return cls(
            tokens=tokens,
            revocations=revocations,
            families=families,
            passwords=PasswordHasher(),
            login_limit=LoginLimiter(
                redis,
                prefix,
                max_failures=settings.login_max_failures,
                window=settings.login_window_seconds,
            ),
            rate_limits=RateLimits(
                redis,
                prefix,
                {
                    "login": settings.rate_limit_login,
                    "register": settings.rate_limit_register,
                    "refresh": settings.rate_limit_refresh,
                    "password_reset": settings.rate_limit_password_reset,
                },
            ),
            identities=Identities(store),
            mfa=Mfa(settings, store, redis, prefix, tokens),
            api_keys=ApiKeyService(revocations),
        )

    def start(self) -> None:
        self.revocations.start()

    async def aclose(self) -> None:
        await self.revocations.aclose()
        self.passwords.close()
