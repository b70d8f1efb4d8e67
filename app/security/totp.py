"""TOTP second factor (RFC 6238 via pyotp: SHA-1, 6 digits, 30 s) and recovery codes. Pure.

- `verify` returns the accepted time step. The caller keeps the last accepted step per user,
  shared by replicas, and stores a new one only if it is still greater (a conditional update):
  a code is then accepted once, and a code older than the last accepted one never is. One step of
  clock drift either way is allowed (RFC 6238 section 5.2 recommends at most one).
- Seeds are 160-bit (RFC 4226's recommended length), from the OS CSPRNG through pyotp; the
  service stores them sealed with `DATA_KEYS` (`app.keys.data`), since it must read them back.
- Recovery codes are 16 Crockford base32 characters (80 bits), shown as `xxxx-xxxx-xxxx-xxxx`
  without look-alike letters (i, l, o, u), and typed in any case, with or without dashes. They are
  stored as hashes only: SHA-256 over a domain tag, the user's id and the code. At 80 bits a fast
  hash cannot be searched, and the user id in the hash stops one search from hitting every
  user's codes at once; argon2 would instead cost up to ten slow hashes per login attempt.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import time
import uuid
from collections.abc import Iterable

import pyotp
from pyotp.utils import strings_equal

DIGITS = 6
INTERVAL = 30
#: Time steps accepted either side of the current one.
DRIFT_STEPS = 1
SECRET_LENGTH = 32  # base32 characters = 160 bits

RECOVERY_CODE_COUNT = 10
#: Crockford base32 in lower case: digits and letters without the look-alikes i, l, o, u.
RECOVERY_ALPHABET = "".join(c for c in string.digits + string.ascii_lowercase if c not in "ilou")
RECOVERY_CODE_CHARS = 16
RECOVERY_GROUP = 4

_CODE = re.compile(rf"[0-9]{{{DIGITS}}}")
_RECOVERY_DOMAIN = b"fastapi-secrets-template/recovery-code/v1\x00"
# Crockford decoding: look-alikes typed by the user mean the digit.
_RECOVERY_TYPOS = str.maketrans({"o": "0", "i": "1", "l": "1"})
_RECOVERY_SEPARATORS = re.compile(r"[\s-]+")


def new_secret() -> str:
    """A new base32 TOTP seed (160 bits). Secret: seal it before storing it."""
    return pyotp.random_base32(SECRET_LENGTH)


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """`otpauth://totp/<issuer>:<account>?secret=...&issuer=...` for authenticator apps."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL).provisioning_uri(
        name=account, issuer_name=issuer
    )


def time_step(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // INTERVAL)


def verify(secret: str, code: str, last_step: int | None, now: float | None = None) -> int | None:
    """The time step `code` belongs to (current +-1), or None: wrong, malformed, or a step at or
    before `last_step` (a replay, or a code older than one already used)."""
    candidate = "".join(code.split()) if isinstance(code, str) else ""
    if not _CODE.fullmatch(candidate):
        return None
    try:
        totp = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)
        current = time_step(now)
        for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
            if last_step is not None and step <= last_step:
                continue
            if strings_equal(totp.generate_otp(step), candidate):
                return step
    except (ValueError, TypeError):
        # An unusable stored seed; never quote it.
        raise ValueError(
            "the stored TOTP secret is not valid base32 of at least 112 bits"
        ) from None
    return None


# ---- recovery codes ---------------------------------------------------------------------


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """`count` fresh codes, shown to the user once; store `hash_recovery_code` of each."""
    codes = []
    for _ in range(count):
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_CHARS))
        groups = [raw[i : i + RECOVERY_GROUP] for i in range(0, len(raw), RECOVERY_GROUP)]
        codes.append("-".join(groups))
    return codes


def normalize_recovery_code(code: str) -> str | None:
    """The code's canonical form (lower case, no dashes or spaces, look-alikes mapped), or
    None when it cannot be a recovery code."""
    if not isinstance(code, str) or len(code) > 64:
        return None
    canonical = _RECOVERY_SEPARATORS.sub("", code).lower().translate(_RECOVERY_TYPOS)
    if len(canonical) != RECOVERY_CODE_CHARS or not set(canonical) <= set(RECOVERY_ALPHABET):
        return None
    return canonical


def hash_recovery_code(code: str, user_id: str | uuid.UUID) -> str:
    """What is stored for one code of one user (hex SHA-256)."""
    canonical = normalize_recovery_code(code)
    if canonical is None:
        raise ValueError("not a recovery code")
    return _hash(canonical, user_id)


def _hash(canonical: str, user_id: str | uuid.UUID) -> str:
    owner = str(user_id).encode("utf-8")
    return hashlib.sha256(
        _RECOVERY_DOMAIN + owner + b"\x00" + canonical.encode("ascii")
    ).hexdigest()


def match_recovery_code(
    code: str, user_id: str | uuid.UUID, stored_hashes: Iterable[str]
) -> str | None:
    """The stored hash `code` matches (the caller deletes exactly that one, atomically, so the
    code is single-use), or None. Compares in constant time against every stored hash."""
    canonical = normalize_recovery_code(code)
    if canonical is None:
        return None
    candidate = _hash(canonical, user_id)
    found = None
    for stored in stored_hashes:
        if hmac.compare_digest(candidate, stored):
            found = stored
    return found
