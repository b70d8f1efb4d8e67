"""The JWT key ring (SPEC section 4): parse `JWT_KEYS`, pick the signing key, verify by `kid`.

It is the parsed form of the `JWT_KEYS` secret (the store parses each new value once, see
`app/config.py`), which is why it lives below `app.config` rather than in `app.security`.

Why it looks like this:
- every key is bound to exactly ONE algorithm when the ring is parsed; verification requires the
  token header's `alg` to equal it, so HS/RS confusion and `alg: none` cannot get through;
- the verifying key is found with one dict lookup by `kid`: a missing or unknown `kid` is refused
  without trying any other key, so verification cost does not grow with the ring;
- the signing key is chosen at call time (the newest key whose `nbf` has passed), so a key added
  with a future `nbf` starts signing on every replica at the same moment without a reload;
- every message names a `kid` or a position, never key material (PyJWT's own exception texts can
  contain the JWK, so they are never passed on).

The cryptography is PyJWT's (`PyJWK`, `jwt.encode`, `jwt.decode`); nothing here signs by hand.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jwt.api_jwk import PyJWK
from jwt.exceptions import PyJWTError

from app.secrets.checks import is_placeholder, strength_problems
from app.secrets.spec import CheckContext

#: The algorithms a key may be bound to, with the JWK `kty` each requires.
ALGORITHMS: Mapping[str, str] = {
    "HS256": "oct",
    "HS384": "oct",
    "HS512": "oct",
    "EdDSA": "OKP",
    "ES256": "EC",
    "RS256": "RSA",
}
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})

#: Longest `kid` accepted in a ring or a token header. A kid is an opaque lookup key.
MAX_KID_LENGTH = 128
#: Longest token accepted for verification; anything larger is refused before parsing.
MAX_TOKEN_LENGTH = 8192
#: Upper bound on clock-skew leeway (RFC 8725 suggests minutes at most; we allow seconds).
MAX_LEEWAY_SECONDS = 30.0
#: Header parameters that would let a token pick its own key or extensions: always refused.
FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})
#: Claims every token must carry.
REQUIRED_CLAIMS = ("iss", "aud", "sub", "iat", "nbf", "exp", "jti")

_MIN_HMAC_BYTES = 32
_MIN_RSA_BITS = 2048
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_THUMBPRINT_MEMBERS: Mapping[str, tuple[str, ...]] = {
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "oct": ("k", "kty"),
}


class KeyRingError(ValueError):
    """The ring cannot be used. Messages name the problem and the kid, never key material."""


class TokenRejected(Exception):
    """A token failed verification. `reason` is for logs and tests; clients get one 401."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwk_thumbprint(jwk_dict: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint: the required members, sorted, no whitespace, base64url."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk_dict.get("kty")))
    if members is None or any(not isinstance(jwk_dict.get(m), str) for m in members):
        raise KeyRingError("cannot compute a thumbprint: unsupported kty or missing members")
    canonical = json.dumps({m: jwk_dict[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def _timestamp(value: Any, what: str, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise KeyRingError(f"{where}: {what} must be a number (seconds since the epoch)")
    return float(value)


@dataclass(frozen=True, eq=False)
class RingKey:
    """One key of the ring, bound to one algorithm."""

    kid: str
    alg: str
    jwk: PyJWK = field(repr=False)
    #: What checks signatures: the public half for asymmetric keys, the secret for HMAC.
    verifier: PyJWK = field(repr=False)
    iat: float | None = None
    nbf: float | None = None
    position: int = 0
    #: Raw HMAC secret bytes (oct keys only), kept for the strength checks.
    secret: bytes | None = field(default=None, repr=False)

    @property
    def is_hmac(self) -> bool:
        return self.alg in HMAC_ALGORITHMS

    @property
    def can_sign(self) -> bool:
        """HMAC keys and asymmetric PRIVATE keys sign; a public-only JWK only verifies."""
        if self.is_hmac:
            return True
        return isinstance(self.jwk.key, RSAPrivateKey | EllipticCurvePrivateKey | Ed25519PrivateKey)

    @property
    def starts(self) -> float | None:
        """When this key may begin signing: `nbf`, else `iat`, else unknown (always)."""
        return self.nbf if self.nbf is not None else self.iat

    def active_at(self, now: float) -> bool:
        return self.nbf is None or self.nbf <= now

    def secret_material(self) -> bytes | None:
        """The key's secret bytes (an HMAC secret, or a private key in DER), for derivation."""
        if self.secret is not None:
            return self.secret
        key = self.jwk.key
        if isinstance(key, RSAPrivateKey | EllipticCurvePrivateKey | Ed25519PrivateKey):
            return key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        return None

    def public_jwk(self) -> dict[str, Any] | None:
        """The public half (for `/.well-known/jwks.json`); None for HMAC keys."""
        if self.is_hmac:
            return None
        key = self.jwk.key
        public = key.public_key() if hasattr(key, "public_key") else key
        document: dict[str, Any] = self.jwk.Algorithm.to_jwk(public, as_dict=True)
        document = {k: v for k, v in document.items() if k not in _PRIVATE_MEMBERS}
        document.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        return document


def _newness(key: RingKey) -> tuple[float, int]:
    # Newest first: the latest start time; keys without timestamps count as the oldest, and
    # among equals the first listed is the newest (the raw-secret convention).
    started = key.starts if key.starts is not None else float("-inf")
    return (started, -key.position)


@dataclass(frozen=True, eq=False)
class KeyRing:
    """An immutable ring. Build it with `KeyRing.parse(text)`; a rotation builds a new one."""

    keys: tuple[RingKey, ...]
    _by_kid: Mapping[str, RingKey] = field(repr=False)
    _newest_first: tuple[RingKey, ...] = field(repr=False)
    #: Signature checks performed (a structural witness that lookup tries at most one key).
    stats: dict[str, int] = field(default_factory=lambda: {"signature_checks": 0}, repr=False)
    _derived: dict[tuple[str, str], bytes] = field(default_factory=dict, repr=False)

    # ---- parsing ------------------------------------------------------------------------

    @classmethod
    def from_keys(cls, keys: Iterable[RingKey]) -> KeyRing:
        ordered = tuple(keys)
        if not ordered:
            raise KeyRingError("holds no key")
        by_kid: dict[str, RingKey] = {}
        for key in ordered:
            if key.kid in by_kid:
                raise KeyRingError(f"kid {key.kid!r} appears more than once")
            by_kid[key.kid] = key
        newest_first = tuple(sorted(ordered, key=_newness, reverse=True))
        return cls(ordered, by_kid, newest_first)

    @staticmethod
    def documents(text: str) -> list[dict[str, Any]]:
        """The ring as JWK dicts, for tools that rewrite it: raw HMAC lines become `oct` JWKs
        with the same kids. Validates first; errors name kids, never material."""
        ring = KeyRing.parse(text)
        stripped = text.strip()
        if stripped.startswith("{"):
            document = json.loads(stripped)
            keys: list[dict[str, Any]] = document.get("keys", [document])
            return keys
        return [
            {
                "kty": "oct",
                "k": b64url(key.secret or b""),
                "kid": key.kid,
                "alg": key.alg,
                "use": "sig",
            }
            for key in ring.keys
        ]

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """A JWK Set (`{"keys": [...]}`), a single JWK, or newline-separated raw HMAC secrets
        (first = newest)."""
        stripped = text.strip()
        if stripped.startswith("{"):
            try:
                document = json.loads(stripped)
            except ValueError:
                raise KeyRingError("looks like JSON but is not valid JSON") from None
            if isinstance(document, dict) and "keys" not in document and "kty" in document:
                # One bare JWK, as `keys generate` prints it: a ring of one key.
                document = {"keys": [document]}
            return cls.from_jwks(document)
        return cls.from_raw_secrets(stripped.splitlines())

    @classmethod
    def from_raw_secrets(cls, lines: Iterable[str]) -> KeyRing:
        keys: list[RingKey] = []
        for position, line in enumerate(part.strip() for part in lines):
            if not line:
                continue
            secret = line.encode("utf-8")
            document = {"kty": "oct", "k": b64url(secret)}
            keys.append(
                _build_key(
                    document,
                    "HS256",
                    jwk_thumbprint(document),
                    None,
                    None,
                    len(keys),
                    f"secret {position + 1}",
                    secret,
                )
            )
        return cls.from_keys(keys)

    @classmethod
    def from_jwks(cls, document: Any) -> KeyRing:
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise KeyRingError('a JWK Set must be an object with a "keys" list')
        keys: list[RingKey] = []
        for position, item in enumerate(document["keys"]):
            where = f"key {position + 1}"
            if not isinstance(item, dict):
                raise KeyRingError(f"{where} is not a JSON object")
            kid = item.get("kid")
            if kid is None:
                kid = jwk_thumbprint(item)
            if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
                raise KeyRingError(f"{where}: kid must be a string of 1..{MAX_KID_LENGTH} chars")
            where = f"key {kid!r}"
            alg = item.get("alg")
            if not isinstance(alg, str) or alg not in ALGORITHMS:
                raise KeyRingError(f"{where}: alg must be one of {', '.join(ALGORITHMS)}")
            if item.get("kty") != ALGORITHMS[alg]:
                raise KeyRingError(f"{where}: alg {alg} needs kty {ALGORITHMS[alg]}")
            if item.get("use") not in (None, "sig"):
                raise KeyRingError(f'{where}: use must be "sig"')
            secret = None
            if alg in HMAC_ALGORITHMS:
                k = item.get("k")
                try:
                    secret = b64url_decode(k) if isinstance(k, str) else None
                except ValueError:
                    secret = None
                if not secret:
                    raise KeyRingError(f"{where}: k must be non-empty base64url")
            iat = _timestamp(item.get("iat"), "iat", where)
            nbf = _timestamp(item.get("nbf"), "nbf", where)
            keys.append(_build_key(item, alg, kid, iat, nbf, position, where, secret))
        return cls.from_keys(keys)

    # ---- policy -------------------------------------------------------------------------

    def weak_key_problems(self) -> list[str]:
        """One message per weak key (production refuses them). Names the kid, never material."""
        problems = []
        for key in self.keys:
            if key.secret is not None:
                if is_placeholder(key.secret.decode("utf-8", errors="replace")):
                    problems.append(
                        f"key {key.kid!r} is a known placeholder; production refuses it"
                    )
                elif len(key.secret) < _MIN_HMAC_BYTES:
                    problems.append(
                        f"key {key.kid!r} is an HMAC key shorter than {_MIN_HMAC_BYTES} bytes"
                    )
                elif strength_problems(key.secret, _MIN_HMAC_BYTES, "bytes"):
                    problems.append(
                        f"key {key.kid!r} is an HMAC key with too little entropy; "
                        "generate it (`python -m app keys generate --alg HS256`)"
                    )
            elif (
                isinstance(key.jwk.key, RSAPrivateKey | RSAPublicKey)
                and key.jwk.key.key_size < _MIN_RSA_BITS
            ):
                problems.append(f"key {key.kid!r} is an RSA key under {_MIN_RSA_BITS} bits")
        return problems

    # ---- derived keys -------------------------------------------------------------------

    def derived_key(self, purpose: str, kid: str | None = None) -> tuple[str, bytes] | None:
        """A 256-bit key for `purpose` (HKDF-SHA256 over a ring key's secret material), and the
        kid it came from: the key signing now by default, or `kid`. None when that key is gone
        or holds no secret (a public-only JWK).

        Other server-side MACs (refresh-family records, keyed hashes of emails) need a server
        secret every replica shares; deriving it from the one REQUIRED secret, with a distinct
        `purpose` per use, adds no secret to provision, and the ring's kid says which key made a
        value, so a MAC made before a rotation still verifies while its key is in the ring."""
        key = self.get(kid) if kid is not None else self.signing_key()
        if key is None:
            return None
        cached = self._derived.get((key.kid, purpose))
        if cached is None:
            material = key.secret_material()
            if material is None:
                return None
            cached = HKDF(
                algorithm=hashes.SHA256(),
                length=32,
                salt=None,
                info=f"fastapi-secrets-template/{purpose}".encode(),
            ).derive(material)
            self._derived[(key.kid, purpose)] = cached
        return key.kid, cached

    # ---- use ----------------------------------------------------------------------------

    def get(self, kid: str) -> RingKey | None:
        return self._by_kid.get(kid)

    def __len__(self) -> int:
        return len(self.keys)

    def signing_key(self, now: float | None = None) -> RingKey | None:
        """The newest key that may sign at `now` (its `nbf` has passed), or None."""
        moment = time.time() if now is None else now
        for key in self._newest_first:
            if key.can_sign and key.active_at(moment):
                return key
        return None

    def public_jwks(self) -> dict[str, list[dict[str, Any]]]:
        documents = [key.public_jwk() for key in self.keys]
        return {"keys": [d for d in documents if d is not None]}

    def sign(self, claims: Mapping[str, Any], typ: str, now: float | None = None) -> str:
        key = self.signing_key(now)
        if key is None:
            raise KeyRingError("holds no key that may sign now (every nbf is in the future)")
        return jwt.encode(
            dict(claims), key.jwk.key, algorithm=key.alg, headers={"kid": key.kid, "typ": typ}
        )

    def verify(
        self, token: str, *, typ: str, issuer: str, audience: str, leeway: float = 0.0
    ) -> dict[str, Any]:
        """Verify `token` and return its claims, or raise TokenRejected.

        Header checks come first (no key is touched for a token that names none or asks for
        something we refuse); then exactly one key, found by `kid`, checks the signature.
        """
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise TokenRejected("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except PyJWTError:
            raise TokenRejected("malformed token") from None
        if FORBIDDEN_HEADERS & header.keys():
            raise TokenRejected("forbidden header parameter")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            raise TokenRejected("algorithm not allowed")
        header_typ = header.get("typ")
        if not isinstance(header_typ, str) or header_typ.lower() not in {
            typ.lower(),
            f"application/{typ.lower()}",
        }:
            raise TokenRejected("wrong token type")
        kid = header.get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
            raise TokenRejected("missing or invalid kid")
        key = self._by_kid.get(kid)
        if key is None:
            raise TokenRejected("unknown kid")
        if alg != key.alg:
            raise TokenRejected("algorithm does not match the key")
        self.stats["signature_checks"] += 1
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.verifier,
                algorithms=[key.alg],
                audience=audience,
                issuer=issuer,
                leeway=min(max(leeway, 0.0), MAX_LEEWAY_SECONDS),
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_signature": True,
                    "strict_aud": True,
                },
            )
        except PyJWTError as exc:
            raise TokenRejected(type(exc).__name__) from None
        if not isinstance(claims.get("jti"), str) or not isinstance(claims.get("sub"), str):
            raise TokenRejected("invalid claims")
        return claims


def _build_key(
    document: Mapping[str, Any],
    alg: str,
    kid: str,
    iat: float | None,
    nbf: float | None,
    position: int,
    where: str,
    secret: bytes | None,
) -> RingKey:
    try:
        jwk_obj = PyJWK({**document, "alg": alg}, algorithm=alg)
        return _with_verifier(jwk_obj, alg, kid, iat, nbf, position, secret)
    except (PyJWTError, ValueError, TypeError):
        # PyJWT's messages may include the JWK itself: say only where and what.
        raise KeyRingError(f"{where}: not a usable {alg} key") from None


def _with_verifier(
    jwk_obj: PyJWK,
    alg: str,
    kid: str,
    iat: float | None,
    nbf: float | None,
    position: int,
    secret: bytes | None,
) -> RingKey:
    verifier = jwk_obj
    if alg not in HMAC_ALGORITHMS and hasattr(jwk_obj.key, "public_key"):
        public = jwk_obj.Algorithm.to_jwk(jwk_obj.key.public_key(), as_dict=True)
        verifier = PyJWK({**public, "alg": alg}, algorithm=alg)
    return RingKey(
        kid=kid,
        alg=alg,
        jwk=jwk_obj,
        verifier=verifier,
        iat=iat,
        nbf=nbf,
        position=position,
        secret=secret,
    )


# ---- making keys (`keys generate|rotate`, `secrets init`) ---------------------------------------

_HMAC_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
_NEW_RSA_BITS = 3072


def new_jwk(alg: str, now: float | None = None, activate_in: float = 0.0) -> dict[str, Any]:
    """A new private JWK with `kid` (RFC 7638 thumbprint), `alg`, `use`, `iat` and `nbf`."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey as Ed25519
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

    document: dict[str, Any]
    if alg in _HMAC_BYTES:
        document = {"kty": "oct", "k": b64url(secrets.token_bytes(_HMAC_BYTES[alg]))}
    elif alg == "EdDSA":
        document = OKPAlgorithm.to_jwk(Ed25519.generate(), as_dict=True)
    elif alg == "ES256":
        document = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), as_dict=True)
    elif alg == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=_NEW_RSA_BITS)
        document = RSAAlgorithm.to_jwk(private, as_dict=True)
    else:
        raise KeyRingError(f"unsupported alg {alg}")
    created = int(time.time() if now is None else now)
    document.update(
        {
            "kid": jwk_thumbprint(document),
            "alg": alg,
            "use": "sig",
            "iat": created,
            "nbf": created + max(round(activate_in), 0),
        }
    )
    return document


def new_dev_ring() -> str:
    """A JWK Set with one fresh HS512 key (64 random bytes): what `secrets init` writes for
    `JWT_KEYS`, and what development generates when it is missing."""
    return json.dumps({"keys": [new_jwk("HS512")]}, indent=2)


def parse_ring(text: str) -> KeyRing:
    """`KeyRing.parse` for the secret declaration (a `KeyRingError` is a `ValueError`)."""
    return KeyRing.parse(text)


def ring_checks(ring: KeyRing, context: CheckContext) -> list[str]:
    """Production refuses weak keys (short or placeholder HMAC secrets, small RSA keys)."""
    return ring.weak_key_problems() if context.production else []
