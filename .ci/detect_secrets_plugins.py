"""detect-secrets plugin: this project's API keys (`fst_` + 32 base62 + 6 base62 CRC32).

Loaded by path from `.secrets.baseline` (`"path": "file://.ci/detect_secrets_plugins.py"`), so
pre-commit's isolated detect-secrets finds it without installing the app: it imports only
detect-secrets and the standard library, and repeats the format from `app/security/api_keys.py`
(tests/security/test_api_keys.py checks that the two agree). Only strings whose checksum is right
are reported, so look-alikes in prose or test names are not.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Generator

from detect_secrets.plugins.base import RegexBasedDetector

PREFIX = "fst_"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_LENGTH = 32
CHECKSUM_LENGTH = 6
LABEL = "fastapi-secrets-template API key"


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


def has_valid_checksum(candidate: str) -> bool:
    body, check = candidate[:-CHECKSUM_LENGTH], candidate[-CHECKSUM_LENGTH:]
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH) == check


class FastapiSecretsTemplateApiKeyDetector(RegexBasedDetector):
    """Scans for fastapi-secrets-template API keys."""

    secret_type = LABEL

    denylist = (
        re.compile(
            rf"(?<![0-9A-Za-z_]){PREFIX}[0-9A-Za-z]{{{RANDOM_LENGTH + CHECKSUM_LENGTH}}}"
            r"(?![0-9A-Za-z_])"
        ),
    )

    def analyze_string(self, string: str) -> Generator[str, None, None]:
        for match in super().analyze_string(string):
            if has_valid_checksum(match):
                yield match
