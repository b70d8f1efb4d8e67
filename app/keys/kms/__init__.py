"""KMS key wrapping for the envelope form of `DATA_KEYS` (`{"kms": "<scheme>://<key>", ...}`).

One module per scheme, each exposing `create_wrapper(path, timeout) -> KeyWrapper`, imported only
when a reference needs it, so the base install needs no cloud SDK; a missing SDK raises the same
`MissingExtraError` as secret references (naming the extra to install). Client construction,
credentials and error translation come from the matching secret provider
(`app.secrets.providers.*`); failures are `SecretFetchError`s (not found, access denied,
unreachable) whose messages never contain key material.

Wrapping calls are blocking SDK calls, made only when the ring is parsed (startup, rotation) and
by `keys rotate`: `parse_data_keys` runs the parse in a worker thread; `KmsKeys` is the blocking
`wrap`/`unwrap` pair for `DataKeyRing.parse(text, kms.unwrap)` and `wrap_jwk(jwk, ref, kms.wrap)`.

| scheme | reference | wrapped bytes |
|---|---|---|
| `aws-kms` | `aws-kms://<key-id, key ARN, alias/name or alias ARN>` | KMS `CiphertextBlob` |
| `gcp-kms` | `gcp-kms://projects/P/locations/L/keyRings/R/cryptoKeys/K` | KMS `ciphertext` |
| `azure-kv-key` | `azure-kv-key://<vault>/<key>[/<version>]` | `<version>.` + RSA-OAEP-256 |
| `vault-transit` | `vault-transit://<mount>/<key>` | `vault:v<n>:...` (ASCII) |
"""

from __future__ import annotations

import asyncio
import importlib
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from app.secrets.errors import SecretFetchError
from app.secrets.references import MissingExtraError

if TYPE_CHECKING:
    from app.keys.data import DataKeyRing

#: scheme -> (module with `create_wrapper(path, timeout)`, the extra bringing its SDK).
KMS_MODULES: dict[str, tuple[str, str]] = {
    "aws-kms": ("app.keys.kms.aws", "aws"),
    "gcp-kms": ("app.keys.kms.gcp", "gcp"),
    "azure-kv-key": ("app.keys.kms.azure", "azure"),
    "vault-transit": ("app.keys.kms.vault", "vault"),
}
DEFAULT_TIMEOUT = 10.0
#: Bound into every wrap where the KMS supports it (AWS encryption context, GCP AAD), so a blob
#: wrapped by the same KMS key for another purpose is not accepted as a data key.
PURPOSE = "fastapi-secrets-template/DATA_KEYS"


class KeyWrapper(Protocol):
    """Wraps and unwraps data keys with one KMS key. Blocking; not for the event loop."""

    def wrap(self, plaintext: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes) -> bytes: ...

    def close(self) -> None: ...


def split_reference(reference: str) -> tuple[str, str]:
    scheme, sep, path = reference.partition("://")
    if not sep or scheme not in KMS_MODULES or not path:
        raise SecretFetchError(
            "expected a KMS key reference: " + ", ".join(f"{s}://..." for s in KMS_MODULES)
        )
    return scheme, path


def open_wrapper(reference: str, timeout: float = DEFAULT_TIMEOUT) -> KeyWrapper:
    """The wrapper for `reference`; its SDK is imported here and nowhere earlier."""
    scheme, path = split_reference(reference)
    module_name, extra = KMS_MODULES[scheme]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MissingExtraError(scheme, extra) from exc
    wrapper: KeyWrapper = module.create_wrapper(path, timeout)
    return wrapper


class KmsKeys:
    """`wrap(reference, plaintext)` / `unwrap(reference, wrapped)` over one wrapper per reference
    (clients and logins are reused across the keys of a ring). Close it when done."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._timeout = timeout
        self._wrappers: dict[str, KeyWrapper] = {}

    def _wrapper(self, reference: str) -> KeyWrapper:
        if reference not in self._wrappers:
            self._wrappers[reference] = open_wrapper(reference, self._timeout)
        return self._wrappers[reference]

    def wrap(self, reference: str, plaintext: bytes) -> bytes:
        return self._wrapper(reference).wrap(plaintext)

    def unwrap(self, reference: str, wrapped: bytes) -> bytes:
        return self._wrapper(reference).unwrap(wrapped)

    def close(self) -> None:
        wrappers, self._wrappers = list(self._wrappers.values()), {}
        for wrapper in wrappers:
            wrapper.close()

    def __enter__(self) -> KmsKeys:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def parse_data_keys_blocking(text: str, timeout: float = DEFAULT_TIMEOUT) -> DataKeyRing:
    """`DataKeyRing.parse` with KMS unwrapping: one unwrap call per wrapped key."""
    from app.keys.data import DataKeyRing

    with KmsKeys(timeout) as kms:
        return DataKeyRing.parse(text, kms.unwrap)


async def parse_data_keys(text: str, call_timeout: float = DEFAULT_TIMEOUT) -> DataKeyRing:
    """The same, off the event loop (for startup and for a rotated `DATA_KEYS` value);
    `call_timeout` bounds each KMS call."""
    return await asyncio.to_thread(parse_data_keys_blocking, text, call_timeout)
