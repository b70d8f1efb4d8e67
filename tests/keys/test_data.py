"""The data-key ring: AES-256-GCM values bound to their row and column, rotation by kid, and
errors that never show key material."""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap

from app.keys.data import (
    DataKeyError,
    DataKeyRing,
    Sealed,
    SealedError,
    field_context,
    new_data_jwk,
    wrap_jwk,
)
from app.keys.signing import b64url, jwk_thumbprint
from app.secrets.errors import SecretAccessDenied

NOW = 1_700_000_000.0
CTX = field_context("users", "totp_secret", "9b1c0a52-3d51-4c4e-9a52-1f0f3b1e2a10")


def ring_of(*keys: dict[str, Any], kms: str | None = None) -> DataKeyRing:
    document: dict[str, Any] = {"keys": list(keys)}
    if kms is not None:
        document["kms"] = kms
    return DataKeyRing.parse(json.dumps(document))


def jwk(size: int = 32, **members: Any) -> dict[str, Any]:
    material = os.urandom(size)
    document = {"kty": "oct", "alg": "A256GCM", "k": b64url(material)}
    document.update(members)
    return document


def refused(text: str, unwrap: Any = None) -> str:
    with pytest.raises(DataKeyError) as info:
        DataKeyRing.parse(text, unwrap)
    return str(info.value)


# ---- sealing and opening ---------------------------------------------------------------------


def test_a_value_round_trips_and_the_sealed_text_names_its_kid_not_its_plaintext() -> None:
    key = new_data_jwk(now=NOW)
    ring = ring_of(key)
    plaintext = b"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    sealed = ring.seal(plaintext, CTX)

    version, kid, nonce, ciphertext = sealed.text.split(".")
    assert (version, kid) == ("v1", key["kid"])
    assert len(base64.urlsafe_b64decode(nonce + "==")) == 12
    assert len(base64.urlsafe_b64decode(ciphertext + "=" * (-len(ciphertext) % 4))) == 32 + 16
    assert plaintext not in sealed.text.encode()
    assert b64url(plaintext) not in sealed.text
    assert ring.open(sealed, CTX) == plaintext
    assert ring.open(sealed.text, CTX) == plaintext  # the stored string opens too
    assert ring.kid_of(sealed) == key["kid"]


def test_every_seal_uses_a_fresh_nonce() -> None:
    ring = ring_of(new_data_jwk())
    values = [ring.seal(b"same seed", CTX) for _ in range(50)]
    assert len({v.nonce for v in values}) == 50
    assert len({v.ciphertext for v in values}) == 50


@pytest.mark.parametrize(
    "other",
    [
        field_context("users", "totp_secret", "0c7e29c4-5b1e-4f7d-8f0a-2b9f8f1c6d33"),  # row
        field_context("users", "recovery_seed", "9b1c0a52-3d51-4c4e-9a52-1f0f3b1e2a10"),  # col
        field_context("admins", "totp_secret", "9b1c0a52-3d51-4c4e-9a52-1f0f3b1e2a10"),  # table
        b"",
    ],
)
def test_a_value_moved_to_another_row_column_or_table_does_not_open(other: bytes) -> None:
    ring = ring_of(new_data_jwk())
    sealed = ring.seal(b"seed of user A", CTX)
    with pytest.raises(SealedError, match="another row, column or user"):
        ring.open(sealed, other)


def test_field_context_is_unambiguous_and_canonical() -> None:
    row = uuid.uuid4()
    assert field_context("t", "c", row) == field_context("t", "c", str(row))
    assert field_context("t", "c", 7) == field_context("t", "c", "7")
    assert field_context("a.b", "c", "1") != field_context("a", "b.c", "1")
    assert field_context("a", "b", "c,d") != field_context("a", "b,c", "d")
    for bad in [("", "c", "1"), ("t", "", "1"), ("t", "c", ""), ("t", "c", True)]:
        with pytest.raises(TypeError):
            field_context(*bad)  # type: ignore[arg-type]


def _flip(text: str, index: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    changed = bytearray(data)
    changed[index] ^= 0x01
    assert all(c in alphabet for c in b64url(bytes(changed)))
    return b64url(bytes(changed))


def test_tampering_with_nonce_ciphertext_or_tag_is_detected() -> None:
    ring = ring_of(new_data_jwk())
    sealed = ring.seal(b"0123456789abcdef", CTX)
    version, kid, nonce, ciphertext = sealed.text.split(".")
    for forged in (
        f"{version}.{kid}.{_flip(nonce, 0)}.{ciphertext}",
        f"{version}.{kid}.{nonce}.{_flip(ciphertext, 0)}",
        f"{version}.{kid}.{nonce}.{_flip(ciphertext, -1)}",  # the tag
    ):
        with pytest.raises(SealedError, match="failed authentication"):
            ring.open(forged, CTX)


def test_relabelling_a_value_with_another_kid_of_the_ring_fails() -> None:
    first, second = new_data_jwk(), new_data_jwk()
    ring = ring_of(first, second)
    sealed = ring.seal(b"seed", CTX, now=time.time())
    other = second["kid"] if sealed.kid == first["kid"] else first["kid"]
    relabelled = sealed.text.replace(sealed.kid, other, 1)
    with pytest.raises(SealedError, match="failed authentication"):
        ring.open(relabelled, CTX)


def test_an_unknown_kid_is_named_without_trying_other_keys() -> None:
    sealed = ring_of(new_data_jwk()).seal(b"seed", CTX)
    other_ring = ring_of(new_data_jwk(), new_data_jwk())
    with pytest.raises(SealedError, match=f"kid {sealed.kid!r}.*not in DATA_KEYS"):
        other_ring.open(sealed, CTX)


@pytest.mark.parametrize(
    "text",
    [
        "JBSWY3DPEHPK3PXP",  # a plaintext seed
        "v2.kid.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",
        "v1.k!d.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",
        "v1.kid.AAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",  # 9-byte nonce
        "v1.kid.AAAAAAAAAAAAAAAA.AAAA",  # shorter than a tag
        "v1.kid.AAAAAAAAAAAAAAA=.AAAAAAAAAAAAAAAAAAAAAA",  # padding
        "v1.kid.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAB",  # non-canonical trailing bits
        "v1.kid.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA.extra",
    ],
)
def test_malformed_sealed_values_are_refused(text: str) -> None:
    with pytest.raises(SealedError):
        Sealed(text)
    with pytest.raises(SealedError):
        ring_of(new_data_jwk()).open(text, CTX)


def test_seal_takes_bytes_only() -> None:
    ring = ring_of(new_data_jwk())
    with pytest.raises(TypeError):
        ring.seal("a str seed", CTX)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ring.seal(b"seed", "users/totp_secret/1")  # type: ignore[arg-type]


# ---- rotation --------------------------------------------------------------------------------


def test_rotation_newest_active_key_encrypts_every_key_decrypts_by_kid() -> None:
    old = new_data_jwk(now=NOW - 86400)
    new = new_data_jwk(now=NOW, activate_in=300)  # verify-only until NOW + 300
    ring = ring_of(new, old)
    before = ring.seal(b"seed", CTX, now=NOW + 10)
    assert before.kid == old["kid"], "a key whose nbf is in the future must not encrypt yet"
    assert not ring.needs_reencrypt(before, now=NOW + 10)

    after = ring.seal(b"seed", CTX, now=NOW + 301)
    assert after.kid == new["kid"]
    assert ring.needs_reencrypt(before, now=NOW + 301)
    assert not ring.needs_reencrypt(after, now=NOW + 301)
    assert ring.open(before, CTX) == ring.open(after, CTX) == b"seed"

    retired = ring_of(new)
    assert retired.open(after, CTX) == b"seed"
    with pytest.raises(SealedError, match="not in DATA_KEYS"):
        retired.open(before, CTX)


def test_keys_without_timestamps_first_listed_is_newest() -> None:
    first, second = jwk(kid="first"), jwk(kid="second")
    assert ring_of(first, second).encrypting_key().kid == "first"  # type: ignore[union-attr]
    assert ring_of(second, first).encrypting_key().kid == "second"  # type: ignore[union-attr]
    dated = jwk(kid="dated", iat=NOW)
    assert ring_of(first, dated).encrypting_key(NOW).kid == "dated"  # type: ignore[union-attr]


def test_a_ring_whose_keys_all_start_later_cannot_seal_but_still_opens() -> None:
    current = ring_of(jwk(kid="a", nbf=NOW))
    sealed = current.seal(b"seed", CTX, now=NOW)
    future = ring_of(jwk(kid="b", nbf=NOW + 3600), json.loads(json.dumps(_jwk_of(current, "a"))))
    assert future.open(sealed, CTX) == b"seed"
    with pytest.raises(DataKeyError, match="no key that may encrypt now"):
        ring_of(jwk(kid="b", nbf=NOW + 3600)).seal(b"seed", CTX, now=NOW)
    with pytest.raises(DataKeyError):
        ring_of(jwk(kid="b", nbf=NOW + 3600)).needs_reencrypt(sealed, now=NOW)


def _jwk_of(ring: DataKeyRing, kid: str) -> dict[str, Any]:
    key = ring.get(kid)
    assert key is not None
    return {"kty": "oct", "alg": "A256GCM", "kid": kid, "k": b64url(key.material), "nbf": key.nbf}


# ---- parsing: refusals never show material -----------------------------------------------------


def _material_free(message: str, *documents: dict[str, Any]) -> None:
    for document in documents:
        for member in ("k", "wrapped_k"):
            if document.get(member):
                assert document[member] not in message


@pytest.mark.parametrize(("size", "bits"), [(16, 128), (24, 192), (31, 248), (64, 512)])
def test_only_256_bit_keys_are_accepted(size: int, bits: int) -> None:
    short = jwk(size, kid="short-key")
    message = refused(json.dumps({"keys": [jwk(), short]}))
    assert "key 'short-key'" in message
    assert "exactly 256 bits" in message
    assert str(bits) in message
    _material_free(message, short)
    no_kid = jwk(size)
    message = refused(json.dumps({"keys": [no_kid]}))
    assert "key 1" in message
    _material_free(message, no_kid)


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        ({"alg": "A128GCM"}, 'alg "A256GCM"'),
        ({"alg": "HS256"}, 'alg "A256GCM"'),
        ({"kty": "RSA"}, 'kty "oct"'),
        ({"use": "sig"}, 'use must be "enc"'),
        ({"kid": "has.dot"}, "kid must be"),
        ({"kid": "x" * 129}, "kid must be"),
        ({"kid": 7}, "kid must be"),
        ({"k": "not base64!"}, "k must be non-empty unpadded base64url"),
        ({"k": ""}, "k must be non-empty"),
        ({"iat": "yesterday"}, "iat must be a number"),
        ({"nbf": True}, "nbf must be a number"),
        ({"wrapped_k": "AAAA"}, "wrapped_k needs a top-level kms"),
    ],
)
def test_malformed_keys_are_refused_naming_the_key(mutation: dict[str, Any], expected: str) -> None:
    document = jwk(kid="the-kid")
    document.update(mutation)
    message = refused(json.dumps({"keys": [document]}))
    assert expected in message
    assert ("key 'the-kid'" in message) or ("key 1" in message)
    _material_free(message, document)


def test_ring_level_refusals() -> None:
    a = jwk(kid="same")
    b = jwk(kid="same")
    message = refused(json.dumps({"keys": [a, b]}))
    assert "kid 'same' appears more than once" in message
    _material_free(message, a, b)
    assert "not valid JSON" in refused("{not json")
    assert "holds no key" in refused('{"keys": []}')
    assert '"keys" list' in refused("[]")
    assert "unknown top-level member(s) extra" in refused('{"keys": [], "extra": 1}')
    assert "is not a JSON object" in refused('{"keys": ["k"]}')


def test_a_bare_jwk_is_a_ring_of_one_and_a_missing_kid_is_the_thumbprint() -> None:
    document = jwk()
    ring = DataKeyRing.parse(json.dumps(document))
    expected = jwk_thumbprint({"kty": "oct", "k": document["k"]})
    assert [k.kid for k in ring.keys] == [expected]


def test_reprs_show_kids_never_material() -> None:
    document = new_data_jwk()
    ring = ring_of(document)
    sealed = ring.seal(b"plain seed", CTX)
    text = repr(ring) + repr(ring.keys[0]) + repr(sealed) + str(ring.keys)
    assert document["kid"] in text
    assert document["k"] not in text
    assert repr(ring.keys[0].material) not in text
    assert "plain seed" not in text
    assert repr(sealed) == f"Sealed(kid={document['kid']!r})"


# ---- production checks -----------------------------------------------------------------------


def test_weak_key_problems_flag_text_low_variety_and_duplicated_keys() -> None:
    assert ring_of(new_data_jwk(), new_data_jwk()).weak_key_problems() == []
    typed = {"kty": "oct", "alg": "A256GCM", "kid": "typed", "k": b64url(b"changeme" * 4)}
    flat = {"kty": "oct", "alg": "A256GCM", "kid": "flat", "k": b64url(bytes(32))}
    copy = new_data_jwk()
    twin = dict(copy, kid="twin")
    problems = ring_of(typed, flat, copy, twin).weak_key_problems()
    assert len(problems) == 3
    assert "key 'typed' is printable text" in problems[0]
    assert "key 'flat' has too few distinct bytes" in problems[1]
    assert f"keys {copy['kid']!r} and 'twin' are the same key" in problems[2]
    for problem in problems:
        _material_free(problem, typed, flat, copy)


# ---- new keys and the envelope form ------------------------------------------------------------


def test_new_data_jwk_is_a_random_256_bit_key_with_thumbprint_kid_and_start() -> None:
    first = new_data_jwk(now=NOW, activate_in=120)
    second = new_data_jwk(now=NOW)
    assert first["k"] != second["k"]
    assert len(base64.urlsafe_b64decode(first["k"] + "=")) == 32
    assert first["kid"] == jwk_thumbprint({"kty": "oct", "k": first["k"]})
    assert (first["alg"], first["kty"], first["use"]) == ("A256GCM", "oct", "enc")
    assert (first["iat"], first["nbf"]) == (int(NOW), int(NOW) + 120)
    assert ring_of(first).keys[0].kid == first["kid"]


class LocalKms:
    """A stand-in KMS with RFC 3394 AES key wrap (`cryptography`), counting calls."""

    def __init__(self) -> None:
        self.kek = os.urandom(32)
        self.calls: list[tuple[str, bytes]] = []

    def wrap(self, reference: str, plaintext: bytes) -> bytes:
        return aes_key_wrap(self.kek, plaintext)

    def unwrap(self, reference: str, wrapped: bytes) -> bytes:
        self.calls.append((reference, wrapped))
        return aes_key_unwrap(self.kek, wrapped)


REFERENCE = "vault-transit://transit/app-data"


def test_envelope_keys_are_unwrapped_once_each_at_parse_and_then_work_offline() -> None:
    kms = LocalKms()
    plain_old, plain_new = new_data_jwk(now=NOW - 10), new_data_jwk(now=NOW)
    sealed_old = ring_of(plain_old).seal(b"old seed", CTX)
    wrapped = [wrap_jwk(plain_new, REFERENCE, kms.wrap), wrap_jwk(plain_old, REFERENCE, kms.wrap)]
    for document, plain in zip(wrapped, (plain_new, plain_old), strict=True):
        assert "k" not in document
        assert document["kid"] == plain["kid"]
        assert (document["iat"], document["nbf"]) == (plain["iat"], plain["nbf"])
        assert document["wrapped_k"] != plain["k"]
    text = json.dumps({"kms": REFERENCE, "keys": wrapped})
    assert plain_new["k"] not in text
    assert plain_old["k"] not in text

    ring = DataKeyRing.parse(text, kms.unwrap)
    assert ring.kms == REFERENCE
    assert len(kms.calls) == 2
    assert {c[0] for c in kms.calls} == {REFERENCE}
    for _ in range(20):
        assert ring.open(sealed_old, CTX) == b"old seed"
        assert ring.open(ring.seal(b"new seed", CTX, now=NOW), CTX) == b"new seed"
    assert len(kms.calls) == 2, "no KMS call after parsing"
    assert ring.encrypting_key(NOW).kid == plain_new["kid"]  # type: ignore[union-attr]


def test_envelope_refusals() -> None:
    kms = LocalKms()
    wrapped = wrap_jwk(new_data_jwk(), REFERENCE, kms.wrap)
    text = json.dumps({"kms": REFERENCE, "keys": [wrapped]})
    assert "parse them with an unwrapper" in refused(text)
    assert "kms scheme 'aws-sm' is not one of" in refused(
        json.dumps({"kms": "aws-sm://prod/key", "keys": [wrapped]}), kms.unwrap
    )
    assert "kms must be" in refused(json.dumps({"kms": 3, "keys": [wrapped]}), kms.unwrap)
    clear = new_data_jwk()
    message = refused(
        json.dumps({"kms": REFERENCE, "keys": [dict(wrapped, k=clear["k"])]}), kms.unwrap
    )
    assert "holds k in clear" in message
    _material_free(message, clear)
    small = aes_key_wrap(kms.kek, os.urandom(16))
    message = refused(
        json.dumps({"kms": REFERENCE, "keys": [dict(wrapped, wrapped_k=b64url(small))]}),
        kms.unwrap,
    )
    assert "exactly 256 bits" in message
    assert "128" in message


def test_unwrap_failures_keep_their_kind_or_name_only_the_exception_type() -> None:
    text = json.dumps(
        {"kms": REFERENCE, "keys": [wrap_jwk(new_data_jwk(), REFERENCE, LocalKms().wrap)]}
    )

    def denied(reference: str, wrapped: bytes) -> bytes:
        raise SecretAccessDenied("Vault refused the request (Forbidden)")

    with pytest.raises(SecretAccessDenied, match="Forbidden"):
        DataKeyRing.parse(text, denied)

    def broken(reference: str, wrapped: bytes) -> bytes:
        raise RuntimeError(f"boom {wrapped!r}")

    message = refused(text, broken)
    assert "unwrapping through vault-transit failed (RuntimeError)" in message
    assert "boom" not in message
    # The wrong KEK: the unwrap itself fails (RFC 3394 integrity check).
    assert "(InvalidUnwrap)" in refused(text, LocalKms().unwrap)


def test_wrap_jwk_validates_the_key_first() -> None:
    with pytest.raises(DataKeyError, match="exactly 256 bits"):
        wrap_jwk(jwk(16, kid="small"), REFERENCE, LocalKms().wrap)
    with pytest.raises(DataKeyError, match="kms scheme"):
        wrap_jwk(new_data_jwk(), "file:///x", LocalKms().wrap)
