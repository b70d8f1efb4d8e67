"""Write a new version of a secret kept in a cloud secret manager (`keys rotate --ref`).

Rotation runs as a job with a SEPARATE, write-capable identity (see docs/secrets-providers.md);
the service itself only ever reads. The job reads the whole secret, changes one part (the
`#json-key`, or all of it), and stores the result as a new version: AWS `PutSecretValue` (the new
version becomes AWSCURRENT), GCP `AddSecretVersion`, Azure `SetSecret`, Vault KV v2 write with
check-and-set on the version read. Running services pick it up on their next refresh.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from app.secrets.documents import json_object
from app.secrets.errors import SecretFetchError, SecretNotFound
from app.secrets.provider import Fetched, Reference, SecretProvider
from app.secrets.references import load_provider, parse_reference
from app.secrets.spec import SecretsConfig

WRITABLE_SCHEMES = ("aws-sm", "gcp-sm", "azure-kv", "vault")


class SecretWriter(SecretProvider, Protocol):
    async def write(
        self, reference: Reference, value: str, expected_version: str | None = None
    ) -> str | None: ...


@dataclass(frozen=True)
class Written:
    reference: Reference
    previous_version: str | None
    version: str | None


def writable_reference(text: str) -> Reference:
    reference = parse_reference(text)
    if reference is None or reference.scheme not in WRITABLE_SCHEMES:
        raise SecretFetchError(
            f"--ref takes a reference to one of {', '.join(s + '://' for s in WRITABLE_SCHEMES)} "
            "(use --file for a key-ring file)"
        )
    if reference.scheme == "vault" and reference.path.partition("/")[2].startswith("creds/"):
        raise SecretFetchError("dynamic credentials (vault://<mount>/creds/...) are not written")
    return reference


def _replace_part(raw: str | None, key: str | None, update: Callable[[str | None], str]) -> str:
    """`update` the selected part of the secret, keeping every other field as it was."""
    if key is None:
        return update(raw)
    document: Any = (
        {}
        if raw is None
        else json_object(raw, "the secret is not a JSON object, so #key cannot be updated")
    )
    current = document.get(key)
    was_text = current is None or isinstance(current, str)
    new_part = update(current if was_text or current is None else json.dumps(current))
    document[key] = new_part if was_text else json.loads(new_part)
    return json.dumps(document)


async def update_secret(
    settings: SecretsConfig, reference_text: str, update: Callable[[str | None], str]
) -> Written:
    """Read the secret behind `reference_text`, apply `update` to its part, write a new version.

    `update` receives the current text of the part (None when absent) and returns the new text;
    it must not print or log either.
    """
    reference = writable_reference(reference_text)
    whole = Reference(reference.scheme, reference.path, None)
    provider: SecretWriter = load_provider(reference.scheme, settings)  # type: ignore[assignment]
    try:
        try:
            current: Fetched | None = await provider.fetch(whole)
        except SecretNotFound:
            current = None  # a new ring in an existing (empty) secret, or a new Vault path
        raw = current.value if current is not None else None
        new_value = _replace_part(raw, reference.json_key, update)
        previous = current.version if current is not None else None
        version = await provider.write(whole, new_value, expected_version=previous)
    finally:
        await provider.aclose()
    return Written(reference, previous, version)


__all__ = ["WRITABLE_SCHEMES", "SecretWriter", "Written", "update_secret", "writable_reference"]
