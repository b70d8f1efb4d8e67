"""Secret references (`aws-sm://...`, `vault://...`, `file:///...`) and the lazy provider registry.

A reference is configuration, not a secret: it may be shown in errors and in `config check`.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.secrets.errors import SecretFetchError, SecretNotFound

if TYPE_CHECKING:
    from app.config import Settings
    from app.secrets.providers.base import SecretProvider

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


@dataclass(frozen=True)
class Reference:
    """`<scheme>://<path>[#<json_key>]`."""

    scheme: str
    path: str
    json_key: str | None = None

    def __str__(self) -> str:
        suffix = f"#{self.json_key}" if self.json_key else ""
        return f"{self.scheme}://{self.path}{suffix}"


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


def load_provider(scheme: str, settings: Settings) -> SecretProvider:
    """Import the provider module for `scheme` and build it; SDKs load only here."""
    module_name, extra = PROVIDER_MODULES[scheme]
    try:
        module = importlib.import_module(module_name)
        provider: SecretProvider = module.create_provider(settings)
    except ImportError as exc:
        raise MissingExtraError(scheme, extra) from exc
    return provider


def select_json_key(raw: str, reference: Reference) -> str:
    """Apply `#json-key`: the secret must be a JSON object holding that key."""
    if reference.json_key is None:
        return raw
    try:
        document = json.loads(raw)
    except ValueError:
        raise SecretFetchError("value is not JSON, so #key cannot select from it") from None
    if not isinstance(document, dict) or reference.json_key not in document:
        raise SecretNotFound(f"JSON key {reference.json_key!r} not present in the secret")
    selected = document[reference.json_key]
    return selected if isinstance(selected, str) else json.dumps(selected)


def json_object(raw: str, problem: str) -> dict[str, Any]:
    """`raw` parsed as a JSON object; otherwise SecretFetchError(`problem`), which must not
    quote `raw` (it is a secret)."""
    try:
        document = json.loads(raw)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise SecretFetchError(problem)
    return document
