"""Secret references (`aws-sm://...`, `vault://...`, `file:///...`) and the lazy provider registry.

A reference is configuration, not a secret: it may be shown in errors and in `config check`.
"""

from __future__ import annotations

import importlib

from app.secrets.provider import Reference, SecretProvider
from app.secrets.spec import SecretsConfig

#: Remote schemes -> (module holding `create_provider(settings)`, the extra bringing its SDK).
#: `file://` is a reference too, but bindings read it like `X_FILE` (with change detection).
PROVIDER_MODULES: dict[str, tuple[str, str]] = {
    "aws-sm": ("app.secrets.providers.aws", "aws"),
    "aws-rds-iam": ("app.secrets.providers.aws_rds_iam", "aws"),
    "gcp-sm": ("app.secrets.providers.gcp", "gcp"),
    "azure-kv": ("app.secrets.providers.azure", "azure"),
    "vault": ("app.secrets.providers.vault", "vault"),
}

REFERENCE_SCHEMES = frozenset({"file", *PROVIDER_MODULES})


class MissingExtraError(Exception):
    def __init__(self, scheme: str, extra: str) -> None:
        self.scheme, self.extra = scheme, extra
        super().__init__(
            f"{scheme}:// references need the optional extra [{extra}]: "
            f"pip install 'fastapi-secrets-template[{extra}]' (or pip install '.[{extra}]')"
        )


def parse_reference(value: str) -> Reference | None:
    """Return the reference `value` spells, or None when it is a literal secret."""
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in REFERENCE_SCHEMES or "\n" in value:
        return None
    path, _, json_key = rest.partition("#")
    return Reference(scheme=scheme, path=path, json_key=json_key or None)


def load_provider(scheme: str, settings: SecretsConfig) -> SecretProvider:
    """Import the provider module for `scheme` and build it; SDKs load only here."""
    module_name, extra = PROVIDER_MODULES[scheme]
    try:
        module = importlib.import_module(module_name)
        provider: SecretProvider = module.create_provider(settings)
    except ImportError as exc:
        raise MissingExtraError(scheme, extra) from exc
    return provider
