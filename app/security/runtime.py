"""Everything the auth API needs at run time, built by the app's lifespan (never at import)."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from app.config import Settings
from app.secrets import SecretStore
from app.security.login_limit import LoginLimiter
from app.security.passwords import PasswordHasher
from app.security.refresh import RefreshFamilies
from app.security.revocation import RevocationList
from app.security.tokens import TokenService


@dataclass
class Security:
    tokens: TokenService
    revocations: RevocationList
    families: RefreshFamilies
    passwords: PasswordHasher
    login_limit: LoginLimiter

    @classmethod
    def create(cls, settings: Settings, store: SecretStore, redis: Redis) -> Security:
        prefix = settings.redis_key_prefix
        revocations = RevocationList(redis, prefix)
        families = RefreshFamilies(
            redis,
            prefix,
            token_ttl=settings.refresh_token_ttl_seconds,
            family_max_age=settings.refresh_family_max_age_seconds,
        )
        return cls(
            tokens=TokenService(settings, store, revocations, families),
            revocations=revocations,
            families=families,
            passwords=PasswordHasher(),
            login_limit=LoginLimiter(
                redis,
                prefix,
                max_failures=settings.login_max_failures,
                window=settings.login_window_seconds,
            ),
        )

    def start(self) -> None:
        self.revocations.start()

    async def aclose(self) -> None:
        await self.revocations.aclose()
        self.passwords.close()
