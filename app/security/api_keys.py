"""API keys for machine clients (SPEC section 3): format, generation, parsing and hashing. Pure.

A key looks like `fst_<32 random base62 chars><6 base62 chars of CRC32>` (42 characters), the
format GitHub uses for its tokens:
- the fixed prefix `fst_` (fastapi-secrets-template) lets secret scanners match leaked keys
  (the project's detect-secrets plugin, `.ci/detect_secrets_plugins.py`, matches it and checks the
  checksum) and lets the server tell an API key from a JWT without parsing either;
- the CRC32 checksum (of everything before it) lets `parse` refuse a typo or a truncated paste
  without a database lookup, and lets scanners skip look-alike strings; it is not a MAC;
- the first 10 random characters are the public `lookup_id`: the indexed column a key is found
  by, and what listings show (`fst_<lookup_id>`, the SPEC's `prefix`). The other 22 random
  characters (22 * log2(62) = 131 bits) are never shown or stored.

Storage keeps `hash_key(key)` only: SHA-256 over a domain tag and the key. A slow password hash
(argon2) exists to make guessing LOW-entropy secrets expensive; here an attacker holding the
hashes must still search 2**131 keys, so a fast hash is as safe and keeps authentication cost
close to a JWT's. A keyed hash (HMAC under a server key) would add a secret whose rotation
invalidates every key, for no gain at this entropy. Comparison is constant-time.

A cloned project may change `PREFIX` (and the plugin's copy of it) to its own name.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import zlib
from dataclasses import dataclass, field
from typing import NamedTuple

PREFIX = "fst"
KEY_PREFIX = PREFIX + "_"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_LENGTH = 32
LOOKUP_LENGTH = 10
CHECKSUM_LENGTH = 6  # 62**6 > 2**32: any CRC32 fits
KEY_LENGTH = len(KEY_PREFIX) + RANDOM_LENGTH + CHECKSUM_LENGTH

_ALPHABET_SET = frozenset(ALPHABET)
_HASH_DOMAIN = b"fastapi-secrets-template/api-key/v1\x00"


class InvalidApiKey(ValueError):
    """The string is not a well-formed key. The message says why, never what was given."""


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


def checksum(body: str) -> str:
    """Base62 CRC32 of `fst_<random>`, fixed width (zero-padded)."""
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def hash_key(key: str) -> str:
    """What is stored for a key (hex SHA-256; see the module docstring for why not argon2)."""
    return hashlib.sha256(_HASH_DOMAIN + key.encode("utf-8")).hexdigest()


def public_prefix(lookup_id: str) -> str:
    """What listings show for a key: `fst_<lookup_id>`."""
    return KEY_PREFIX + lookup_id


class GeneratedKey(NamedTuple):
    """`key` is shown to its owner once; store `lookup_id` (unique index) and `hash`."""

    key: str
    lookup_id: str
    hash: str

    def __repr__(self) -> str:  # never the key
        return f"GeneratedKey(lookup_id={self.lookup_id!r})"


@dataclass(frozen=True)
class ParsedKey:
    """A well-formed key (checksum verified): find the row by `lookup_id`, then `matches`."""

    lookup_id: str
    key: str = field(repr=False)

    def matches(self, stored_hash: str) -> bool:
        return verify(self.key, stored_hash)


def generate() -> GeneratedKey:
    """A new key from the OS CSPRNG (`secrets`, one unbiased choice per character)."""
    random_part = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    body = KEY_PREFIX + random_part
    key = body + checksum(body)
    return GeneratedKey(key, random_part[:LOOKUP_LENGTH], hash_key(key))


def looks_like_key(value: str) -> bool:
    """Cheap routing test (prefix only): is this credential meant to be an API key?"""
    return value.startswith(KEY_PREFIX)


def parse(key: str) -> ParsedKey:
    """Check the prefix, length, alphabet and checksum; no lookup, no hashing."""
    if not isinstance(key, str) or not key.startswith(KEY_PREFIX):
        raise InvalidApiKey(f"not an API key (they start with {KEY_PREFIX})")
    if len(key) != KEY_LENGTH:
        raise InvalidApiKey(f"wrong length for an API key ({KEY_LENGTH} characters)")
    rest = key[len(KEY_PREFIX) :]
    if not set(rest) <= _ALPHABET_SET:
        raise InvalidApiKey("an API key holds only letters and digits after the prefix")
    body, check = key[:-CHECKSUM_LENGTH], key[-CHECKSUM_LENGTH:]
    if not hmac.compare_digest(checksum(body), check):
        raise InvalidApiKey("API key checksum mismatch (mistyped or truncated)")
    return ParsedKey(rest[:LOOKUP_LENGTH], key)


def verify(key: str, stored_hash: str) -> bool:
    """Constant-time comparison of `key`'s hash with the stored one."""
    return hmac.compare_digest(hash_key(key), stored_hash)
