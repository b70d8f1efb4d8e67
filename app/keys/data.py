"""The data-key ring (SPEC section 7): `DATA_KEYS` encrypts the secrets the application must read
back (TOTP seeds), with AES-256-GCM from `cryptography` (no hand-written crypto).

`DATA_KEYS` is a JWK Set of `{"kty":"oct","alg":"A256GCM","kid","k"[,"iat","nbf","use":"enc"]}`
keys, or the same with every `k` replaced by `wrapped_k` under a top-level
`"kms": "<scheme>://<key>"` reference (envelope encryption: `aws-kms://`, `gcp-kms://`,
`azure-kv-key://`, `vault-transit://`). Wrapped keys are unwrapped ONCE, when the ring is parsed
(startup and rotation), through the `unwrap(kms_reference, wrapped) -> bytes` callable given to
`parse`; nothing here talks to a KMS per request.

Why it looks like this (mirroring the JWT ring, `app.keys.signing`):
- the encrypting key is the newest key whose `nbf` has passed (chosen at call time, so a key added
  with a future `nbf` starts encrypting on every replica at once); every key decrypts, found by
  one dict lookup on the `kid` the value names;
- exactly 256-bit keys: a shorter AES key is refused when the ring is parsed, in every environment;
- every message names a `kid` or a position, never key material, and no repr shows a key.

Sealed value format (version 1), one ASCII string, safe in a TEXT column, a log line or a URL:

    v1.<kid>.<nonce>.<ciphertext>

`nonce` is 12 random bytes (a fresh 96-bit nonce per value) and `ciphertext` is AES-GCM's
ciphertext with its 16-byte tag appended, both unpadded base64url. Kids are restricted to
`[A-Za-z0-9_-]` so the dots are unambiguous. The associated data authenticated with every value
is `"fastapi-secrets-template/data/v1" NUL kid NUL context`: the format version and kid cannot be
edited, and `context` (use `field_context(table, column, row_id)`) binds the value to its row and
column, so a ciphertext copied to another row, column or user fails to open. Random nonces bound
one key to about 2**32 values (NIST SP 800-38D); rotating keys keeps each far below that.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.keys.signing import MAX_KID_LENGTH, b64url, jwk_thumbprint
from app.secrets.spec import CheckContext

ALG = "A256GCM"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
FORMAT_VERSION = "v1"
#: Schemes a top-level `kms` reference may use (the modules live in `app.keys.kms`).
KMS_SCHEMES = ("aws-kms", "gcp-kms", "azure-kv-key", "vault-transit")

#: `unwrap(kms_reference, wrapped_bytes) -> key bytes` and `wrap(kms_reference, key) -> wrapped`.
Unwrapper = Callable[[str, bytes], bytes]
Wrapper = Callable[[str, bytes], bytes]

_KID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_KID_LENGTH}}}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_AAD_PREFIX = b"fastapi-secrets-template/data/" + FORMAT_VERSION.encode() + b"\x00"
# Printable ASCII: key "material" that is all text was typed or copied, not generated.
_PRINTABLE = frozenset(range(0x20, 0x7F))
# 32 random bytes have ~30 distinct values; fewer than 16 does not happen by chance.
_MIN_DISTINCT_BYTES = 16


class DataKeyError(ValueError):
    """The ring cannot be used. Messages name the problem and the kid, never key material."""


class SealedError(ValueError):
    """A sealed value cannot be opened: malformed, unknown kid, or failed authentication.
    Messages never contain the value (nor, of course, any plaintext)."""


def b64url_decode_strict(text: str) -> bytes:
    """Unpadded, canonical base64url only (`base64` itself skips junk characters)."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url(data) != text:
        raise ValueError("not canonical base64url")
    return data


def field_context(table: str, column: str, row_id: str | int | uuid.UUID) -> bytes:
    """Associated data binding a value to one column of one row. Give `row_id` as stored (a
    UUID or int is turned into its canonical text); the row id must exist before sealing."""
    if not isinstance(table, str) or not table or not isinstance(column, str) or not column:
        raise TypeError("field_context needs a non-empty table and column name")
    if isinstance(row_id, bool) or not isinstance(row_id, str | int | uuid.UUID):
        raise TypeError("field_context needs the row id as str, int or UUID")
    row = str(row_id)
    if not row:
        raise TypeError("field_context needs a non-empty row id")
    # A JSON array is unambiguous whatever characters the parts hold.
    return json.dumps(["field", table, column, row], separators=(",", ":")).encode("utf-8")


def _aad(kid: str, context: bytes) -> bytes:
    return _AAD_PREFIX + kid.encode("ascii") + b"\x00" + context


@dataclass(frozen=True, slots=True)
class Sealed:
    """A value sealed by a `DataKeyRing` (see the module docstring for the format).

    The only type the encrypted column stores: constructing one checks the format, so plaintext
    cannot be wrapped in a `Sealed` by mistake. The ciphertext is not secret, but the repr shows
    only the kid to keep logs short."""

    text: str
    kid: str = field(init=False, compare=False)
    nonce: bytes = field(init=False, compare=False, repr=False)
    ciphertext: bytes = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise TypeError("Sealed wraps the sealed text (a str)")
        parts = self.text.split(".")
        if len(parts) != 4 or parts[0] != FORMAT_VERSION or not _KID.fullmatch(parts[1]):
            raise SealedError(f"not a sealed value (expected {FORMAT_VERSION}.<kid>.<nonce>.<ct>)")
        try:
            nonce = b64url_decode_strict(parts[2])
            ciphertext = b64url_decode_strict(parts[3])
        except ValueError:
            raise SealedError("not a sealed value (nonce or ciphertext is not base64url)") from None
        if len(nonce) != NONCE_BYTES or len(ciphertext) < TAG_BYTES:
            raise SealedError("not a sealed value (nonce or ciphertext has the wrong length)")
        object.__setattr__(self, "kid", parts[1])
        object.__setattr__(self, "nonce", nonce)
        object.__setattr__(self, "ciphertext", ciphertext)

    def __repr__(self) -> str:
        return f"Sealed(kid={self.kid!r})"

    def __str__(self) -> str:
        return self.text


def _as_sealed(sealed: Sealed | str) -> Sealed:
    return sealed if isinstance(sealed, Sealed) else Sealed(sealed)


@dataclass(frozen=True, eq=False)
class DataKey:
    """One AES-256-GCM key of the ring."""

    kid: str
    aead: AESGCM = field(repr=False)
    material: bytes = field(repr=False)  # kept for the strength checks only
    iat: float | None = None
    nbf: float | None = None
    position: int = 0

    @property
    def starts(self) -> float | None:
        """When this key may begin encrypting: `nbf`, else `iat`, else unknown (always)."""
        return self.nbf if self.nbf is not None else self.iat

    def active_at(self, now: float) -> bool:
        return self.nbf is None or self.nbf <= now


def _newness(key: DataKey) -> tuple[float, int]:
    # As the JWT ring: latest start first; keys without timestamps are the oldest; among equals
    # the first listed is the newest.
    started = key.starts if key.starts is not None else float("-inf")
    return (started, -key.position)


def _timestamp(value: Any, what: str, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataKeyError(f"{where}: {what} must be a number (seconds since the epoch)")
    return float(value)


def _kms_scheme(reference: Any) -> str:
    if not isinstance(reference, str) or "://" not in reference:
        raise DataKeyError(
            'kms must be a "<scheme>://<key>" reference with scheme ' + ", ".join(KMS_SCHEMES)
        )
    scheme = reference.partition("://")[0]
    if scheme not in KMS_SCHEMES:
        raise DataKeyError(f"kms scheme {scheme!r} is not one of {', '.join(KMS_SCHEMES)}")
    return scheme


def _decode_member(item: Mapping[str, Any], member: str, where: str) -> bytes:
    value = item.get(member)
    try:
        decoded = b64url_decode_strict(value) if isinstance(value, str) else b""
    except ValueError:
        decoded = b""
    if not decoded:
        raise DataKeyError(f"{where}: {member} must be non-empty unpadded base64url")
    return decoded


@dataclass(frozen=True, eq=False)
class DataKeyRing:
    """An immutable ring. Build it with `DataKeyRing.parse(text)`; a rotation builds a new one."""

    keys: tuple[DataKey, ...]
    #: The KMS reference that wrapped the keys (envelope form), else None. Not a secret.
    kms: str | None = None
    _by_kid: Mapping[str, DataKey] = field(default_factory=dict, repr=False)
    _newest_first: tuple[DataKey, ...] = field(default=(), repr=False)

    # ---- parsing ------------------------------------------------------------------------

    @classmethod
    def from_keys(cls, keys: Iterable[DataKey], kms: str | None = None) -> DataKeyRing:
        ordered = tuple(keys)
        if not ordered:
            raise DataKeyError("holds no key")
        by_kid: dict[str, DataKey] = {}
        for key in ordered:
            if key.kid in by_kid:
                raise DataKeyError(f"kid {key.kid!r} appears more than once")
            by_kid[key.kid] = key
        newest_first = tuple(sorted(ordered, key=_newness, reverse=True))
        return cls(ordered, kms, by_kid, newest_first)

    @classmethod
    def parse(cls, text: str, unwrap: Unwrapper | None = None) -> DataKeyRing:
        """A JWK Set, a single JWK, or the envelope form (`{"kms": ..., "keys": [...]}`, each
        `wrapped_k` unwrapped once through `unwrap`). Errors from `unwrap` that are already
        `SecretFetchError`s (denied, unreachable, ...) propagate unchanged."""
        try:
            document = json.loads(text)
        except ValueError:
            raise DataKeyError("is not valid JSON (expected a JWK Set of A256GCM keys)") from None
        if isinstance(document, dict) and "keys" not in document and "kty" in document:
            document = {"keys": [document]}  # one bare JWK, as `keys generate` prints it
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise DataKeyError('must be a JWK Set: an object with a "keys" list')
        unknown = sorted(set(document) - {"keys", "kms"})
        if unknown:
            raise DataKeyError(f"unknown top-level member(s) {', '.join(unknown)}")
        kms = document.get("kms")
        if kms is not None:
            _kms_scheme(kms)
            if unwrap is None:
                raise DataKeyError(
                    f"keys are wrapped by {kms}: parse them with an unwrapper (app.keys.kms)"
                )
        keys = [
            cls._parse_key(item, position, kms, unwrap)
            for position, item in enumerate(document["keys"])
        ]
        return cls.from_keys(keys, kms)

    @staticmethod
    def _parse_key(item: Any, position: int, kms: str | None, unwrap: Unwrapper | None) -> DataKey:
        where = f"key {position + 1}"
        if not isinstance(item, dict):
            raise DataKeyError(f"{where} is not a JSON object")
        kid = item.get("kid")
        if kid is not None and (not isinstance(kid, str) or not _KID.fullmatch(kid)):
            raise DataKeyError(
                f"{where}: kid must be 1..{MAX_KID_LENGTH} characters of A-Z a-z 0-9 _ - "
                "(it is written into every sealed value)"
            )
        if kid is not None:
            where = f"key {kid!r}"
        if item.get("kty") != "oct" or item.get("alg") != ALG:
            raise DataKeyError(f'{where}: data keys must have kty "oct" and alg "{ALG}"')
        if item.get("use") not in (None, "enc"):
            raise DataKeyError(f'{where}: use must be "enc"')
        iat = _timestamp(item.get("iat"), "iat", where)
        nbf = _timestamp(item.get("nbf"), "nbf", where)
        if kms is None:
            if "wrapped_k" in item:
                raise DataKeyError(f"{where}: wrapped_k needs a top-level kms reference")
            material = _decode_member(item, "k", where)
        else:
            if "k" in item:
                raise DataKeyError(
                    f"{where}: holds k in clear next to a kms reference; envelope keys carry "
                    "only wrapped_k"
                )
            wrapped = _decode_member(item, "wrapped_k", where)
            assert unwrap is not None
            material = _unwrap(unwrap, kms, wrapped, where)
        if len(material) != KEY_BYTES:
            raise DataKeyError(
                f"{where}: A256GCM keys must be exactly 256 bits, this one has {len(material) * 8}"
            )
        if kid is None:
            kid = jwk_thumbprint({"kty": "oct", "k": b64url(material)})
        return DataKey(kid, AESGCM(material), material, iat, nbf, position)

    # ---- policy -------------------------------------------------------------------------

    def weak_key_problems(self) -> list[str]:
        """Keys that were not generated at random (production refuses them): material that is
        all printable text, has too few distinct bytes, or is shared by two kids."""
        problems = []
        seen: dict[bytes, str] = {}
        for key in self.keys:
            if set(key.material) <= _PRINTABLE:
                problems.append(
                    f"key {key.kid!r} is printable text, not 32 random bytes; "
                    "generate one with `keys generate --alg A256GCM`"
                )
            elif len(set(key.material)) < _MIN_DISTINCT_BYTES:
                problems.append(f"key {key.kid!r} has too few distinct bytes to be random")
            if key.material in seen:
                problems.append(f"keys {seen[key.material]!r} and {key.kid!r} are the same key")
            seen.setdefault(key.material, key.kid)
        return problems

    # ---- use ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.keys)

    def get(self, kid: str) -> DataKey | None:
        return self._by_kid.get(kid)

    def encrypting_key(self, now: float | None = None) -> DataKey | None:
        """The newest key that may encrypt at `now` (its `nbf` has passed), or None."""
        moment = time.time() if now is None else now
        for key in self._newest_first:
            if key.active_at(moment):
                return key
        return None

    def _current(self, now: float | None) -> DataKey:
        key = self.encrypting_key(now)
        if key is None:
            raise DataKeyError("holds no key that may encrypt now (every nbf is in the future)")
        return key

    def seal(self, plaintext: bytes, context: bytes, now: float | None = None) -> Sealed:
        """Encrypt under the current key with a fresh random nonce, bound to `context`."""
        if not isinstance(plaintext, bytes) or not isinstance(context, bytes):
            raise TypeError("seal takes bytes (encode text first) and a bytes context")
        key = self._current(now)
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = key.aead.encrypt(nonce, plaintext, _aad(key.kid, context))
        return Sealed(f"{FORMAT_VERSION}.{key.kid}.{b64url(nonce)}.{b64url(ciphertext)}")

    def open(self, sealed: Sealed | str, context: bytes) -> bytes:
        """Decrypt with the key the value names. SealedError when the kid is not in the ring,
        or the value was altered or belongs to another context (row, column, user)."""
        if not isinstance(context, bytes):
            raise TypeError("open takes a bytes context")
        value = _as_sealed(sealed)
        key = self._by_kid.get(value.kid)
        if key is None:
            raise SealedError(
                f"sealed under kid {value.kid!r}, which is not in DATA_KEYS (retired too early?)"
            )
        try:
            return key.aead.decrypt(value.nonce, value.ciphertext, _aad(key.kid, context))
        except InvalidTag:
            raise SealedError(
                f"value under kid {value.kid!r} failed authentication: it was altered, or "
                "belongs to another row, column or user"
            ) from None

    @staticmethod
    def kid_of(sealed: Sealed | str) -> str:
        return _as_sealed(sealed).kid

    def needs_reencrypt(self, sealed: Sealed | str, now: float | None = None) -> bool:
        """True when the value is sealed under a key other than the current encrypting key."""
        return _as_sealed(sealed).kid != self._current(now).kid


def _unwrap(unwrap: Unwrapper, kms: str, wrapped: bytes, where: str) -> bytes:
    from app.secrets.errors import SecretFetchError

    try:
        material = unwrap(kms, wrapped)
    except SecretFetchError:
        raise
    except Exception as exc:
        raise DataKeyError(
            f"{where}: unwrapping through {kms.partition('://')[0]} failed ({type(exc).__name__})"
        ) from None
    if not isinstance(material, bytes):
        raise DataKeyError(f"{where}: the unwrapper returned no bytes")
    return material


def new_data_jwk(now: float | None = None, activate_in: float = 0.0) -> dict[str, Any]:
    """A new random A256GCM JWK with `kid` (RFC 7638 thumbprint), `iat` and `nbf` (from now +
    `activate_in`), for `keys rotate --alg A256GCM`. The result holds key material."""
    document: dict[str, Any] = {"kty": "oct", "k": b64url(os.urandom(KEY_BYTES))}
    created = int(time.time() if now is None else now)
    document.update(
        {
            "kid": jwk_thumbprint(document),
            "alg": ALG,
            "use": "enc",
            "iat": created,
            "nbf": created + max(round(activate_in), 0),
        }
    )
    return document


def wrap_jwk(jwk: Mapping[str, Any], kms_reference: str, wrap: Wrapper) -> dict[str, Any]:
    """The envelope form of `jwk`: every member but `k`, plus `wrapped_k` = `wrap(kms, k)`.
    Put the result in `{"kms": kms_reference, "keys": [...]}`."""
    _kms_scheme(kms_reference)
    ring = DataKeyRing.parse(json.dumps({"keys": [dict(jwk)]}))  # validates, names no material
    key = ring.keys[0]
    wrapped = wrap(kms_reference, key.material)
    if not isinstance(wrapped, bytes) or not wrapped:
        raise DataKeyError(f"key {key.kid!r}: the wrapper returned no bytes")
    document = {k: v for k, v in jwk.items() if k != "k"}
    document.update({"kid": key.kid, "wrapped_k": b64url(wrapped)})
    return document


def new_dev_data_ring() -> str:
    """A JWK Set with one fresh A256GCM key: what `secrets init` writes for `DATA_KEYS`, and
    what development and test generate when it is missing (values sealed under it are lost
    with it: fine for a throwaway database, never for a real one)."""
    return json.dumps({"keys": [new_data_jwk()]}, indent=2)


def data_ring_checks(ring: DataKeyRing, context: CheckContext) -> list[str]:
    """Production refuses keys that were not generated at random (`weak_key_problems`); the
    256-bit length is enforced when the ring is parsed, in every environment."""
    return ring.weak_key_problems() if context.production else []
