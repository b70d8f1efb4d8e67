"""TOTP (RFC 6238 through pyotp) with replay refusal and +-1 step drift, and recovery codes
stored as per-user hashes."""

from __future__ import annotations

import base64
import math
import re
import uuid
from urllib.parse import parse_qs, unquote, urlparse

import pyotp
import pytest

from app.security import totp

NOW = 1_700_000_015.0  # mid-step
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()  # RFC 6238 appendix B, SHA-1


def code_at(secret: str, moment: float) -> str:
    return pyotp.TOTP(secret).at(moment)


def test_rfc_6238_reference_values_verify_at_their_time_step() -> None:
    # Appendix B lists 8-digit codes; a 6-digit code is their last six digits.
    for moment, eight_digits in [
        (59, "94287082"),
        (1111111109, "07081804"),
        (2000000000, "69279037"),
    ]:
        step = totp.verify(RFC_SECRET, eight_digits[-6:], None, now=moment)
        assert step == moment // 30


def test_new_secrets_are_160_bit_base32_and_distinct() -> None:
    secrets_ = {totp.new_secret() for _ in range(100)}
    assert len(secrets_) == 100
    for secret in secrets_:
        assert re.fullmatch(r"[A-Z2-7]{32}", secret)
        assert len(base64.b32decode(secret)) == 20


def test_provisioning_uri_is_what_authenticator_apps_read() -> None:
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, "alice@example.com", "Acme API")
    parsed = urlparse(uri)
    assert (parsed.scheme, parsed.netloc) == ("otpauth", "totp")
    assert unquote(parsed.path) == "/Acme API:alice@example.com"
    query = parse_qs(parsed.query)
    assert query["secret"] == [secret]
    assert query["issuer"] == ["Acme API"]
    assert query.get("algorithm", ["SHA1"]) == ["SHA1"]
    assert query.get("digits", ["6"]) == ["6"]
    assert query.get("period", ["30"]) == ["30"]
    again = pyotp.parse_uri(uri)
    assert again.secret == secret
    assert again.at(NOW) == code_at(secret, NOW)


def test_codes_of_the_current_and_adjacent_steps_are_accepted_and_no_further() -> None:
    secret = totp.new_secret()
    step = int(NOW // 30)
    assert totp.verify(secret, code_at(secret, NOW), None, now=NOW) == step
    assert totp.verify(secret, code_at(secret, NOW - 30), None, now=NOW) == step - 1
    assert totp.verify(secret, code_at(secret, NOW + 30), None, now=NOW) == step + 1
    valid = {code_at(secret, NOW + d) for d in (-30, 0, 30)}
    for far in (NOW - 60, NOW + 60, NOW - 3600):
        if code_at(secret, far) not in valid:
            assert totp.verify(secret, code_at(secret, far), None, now=NOW) is None


def test_an_accepted_code_is_refused_the_second_time_and_older_steps_too() -> None:
    secret = totp.new_secret()
    accepted = totp.verify(secret, code_at(secret, NOW), None, now=NOW)
    assert accepted is not None
    # Replay of the same code, even a few seconds later within its window.
    assert totp.verify(secret, code_at(secret, NOW), accepted, now=NOW + 5) is None
    # The previous step's code is still within drift, but older than the one used.
    if code_at(secret, NOW - 30) != code_at(secret, NOW):
        assert totp.verify(secret, code_at(secret, NOW - 30), accepted, now=NOW) is None
    # The next step's code moves forward.
    assert totp.verify(secret, code_at(secret, NOW + 30), accepted, now=NOW + 30) == accepted + 1


def test_wrong_or_malformed_codes_are_refused() -> None:
    secret = totp.new_secret()
    valid = {code_at(secret, NOW + d) for d in (-30, 0, 30)}
    wrong = next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in valid)
    assert totp.verify(secret, wrong, None, now=NOW) is None
    good = code_at(secret, NOW)
    fullwidth = "\uff11\uff12\uff13\uff14\uff15\uff16"
    for malformed in ("", good[:5], good + "0", "abcdef", f"{good[:3]}-{good[3:]}", fullwidth):
        assert totp.verify(secret, malformed, None, now=NOW) is None
    assert totp.verify(secret, f" {good[:3]} {good[3:]} ", None, now=NOW) == int(NOW // 30)


def test_an_unusable_stored_seed_raises_without_quoting_it() -> None:
    with pytest.raises(ValueError, match="not valid base32") as info:
        totp.verify("NOT-BASE32-!!", "123456", None, now=NOW)
    assert "NOT-BASE32" not in str(info.value)
    with pytest.raises(ValueError, match="not valid base32"):
        totp.verify("JBSWY3DP", "123456", None, now=NOW)  # 40 bits: too short


# ---- recovery codes ----------------------------------------------------------------------------


def test_recovery_codes_are_typable_and_carry_at_least_50_bits() -> None:
    codes = totp.new_recovery_codes()
    assert len(codes) == 10
    assert len(set(codes)) == 10
    for code in codes:
        assert re.fullmatch(r"[0-9a-hjkmnp-tv-z]{4}(-[0-9a-hjkmnp-tv-z]{4}){3}", code)
    bits = totp.RECOVERY_CODE_CHARS * math.log2(len(set(totp.RECOVERY_ALPHABET)))
    assert bits >= 50
    assert not set("ilou") & set(totp.RECOVERY_ALPHABET)


def test_a_recovery_code_matches_its_own_users_hash_once_however_it_is_typed() -> None:
    user = uuid.uuid4()
    codes = totp.new_recovery_codes()
    stored = [totp.hash_recovery_code(code, user) for code in codes]
    for code, digest in zip(codes, stored, strict=True):
        assert code.replace("-", "") not in digest
        assert re.fullmatch(r"[0-9a-f]{64}", digest)
    code = codes[3]
    typed = code.upper().replace("-", " ").replace("0", "O").replace("1", "l")
    assert totp.match_recovery_code(typed, user, stored) == stored[3]
    assert totp.match_recovery_code(code.replace("-", ""), user, stored) == stored[3]
    # Another user's hashes never match, even for the same code.
    assert totp.match_recovery_code(code, uuid.uuid4(), stored) is None
    assert totp.hash_recovery_code(code, uuid.uuid4()) != stored[3]
    # Single use: once the caller deleted the matched hash, the code is refused.
    remaining = [h for h in stored if h != stored[3]]
    assert totp.match_recovery_code(code, user, remaining) is None


def test_malformed_recovery_codes_match_nothing() -> None:
    user = uuid.uuid4()
    stored = [totp.hash_recovery_code(c, user) for c in totp.new_recovery_codes()]
    for malformed in ("", "abcd-efgh", "uuuu-uuuu-uuuu-uuuu", "x" * 200, "123456"):
        assert totp.normalize_recovery_code(malformed) is None
        assert totp.match_recovery_code(malformed, user, stored) is None
    with pytest.raises(ValueError, match="not a recovery code"):
        totp.hash_recovery_code("abcd", user)
