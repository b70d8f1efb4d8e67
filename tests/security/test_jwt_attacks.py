"""Every RFC 8725 / OWASP JWT attack we know of is refused by KeyRing.verify.

Tokens here are forged by hand where PyJWT would refuse to make them: an attacker does not ask.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from app.keys.signing import KeyRing, TokenRejected
from tests.security.keys import b64, claims, forge_hmac, new_jwk, ring_text, sign_with, unsigned


def verify(ring: KeyRing, token: str) -> dict[str, object]:
    return ring.verify(token, typ="at+jwt", issuer="app", audience="app", leeway=5)


def rejected(ring: KeyRing, token: str) -> bool:
    try:
        verify(ring, token)
    except TokenRejected:
        return True
    return False


@pytest.fixture(scope="module")
def rsa_key() -> dict[str, object]:
    return new_jwk("RS256")


@pytest.fixture(scope="module")
def hmac_key() -> dict[str, object]:
    return new_jwk("HS256")


@pytest.fixture(scope="module")
def ring(rsa_key: dict[str, object], hmac_key: dict[str, object]) -> KeyRing:
    return KeyRing.parse(ring_text(rsa_key, hmac_key, new_jwk("EdDSA"), new_jwk("ES256")))


def test_a_legitimate_token_passes(ring: KeyRing, rsa_key: dict[str, object]) -> None:
    assert verify(ring, sign_with(rsa_key, claims()))["iss"] == "app"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", ""])
@pytest.mark.parametrize("with_signature", [False, True])
def test_alg_none_in_any_casing(
    ring: KeyRing, rsa_key: dict[str, object], alg: str, with_signature: bool
) -> None:
    genuine = sign_with(rsa_key, claims())
    header = {"alg": alg, "kid": rsa_key["kid"], "typ": "at+jwt"}
    signature = genuine.rsplit(".", 1)[1] if with_signature else ""
    assert rejected(ring, unsigned(claims(), header, signature))


def test_hs_rs_confusion_with_the_published_public_key(
    ring: KeyRing, rsa_key: dict[str, object]
) -> None:
    public = next(k for k in ring.public_jwks()["keys"] if k["kid"] == rsa_key["kid"])
    public_obj = jwt.PyJWK(public).key
    pem = public_obj.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = public_obj.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (pem, der, json.dumps(public).encode(), public["n"].encode()):
        for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
            header = {"alg": alg, "kid": rsa_key["kid"], "typ": "at+jwt"}
            assert rejected(ring, forge_hmac(secret, claims(), header, digest))


def test_alg_must_equal_the_keys_alg(ring: KeyRing, hmac_key: dict[str, object]) -> None:
    as_hs384 = {**hmac_key, "alg": "HS384"}
    header = {"alg": "HS384", "kid": hmac_key["kid"], "typ": "at+jwt"}
    secret = jwt.PyJWK(as_hs384).key
    assert rejected(ring, forge_hmac(secret, claims(), header, hashlib.sha384))


def test_tampered_payload(ring: KeyRing, rsa_key: dict[str, object]) -> None:
    header, _, signature = sign_with(rsa_key, claims(sub="alice")).split(".")
    forged_payload = b64(json.dumps(claims(sub="admin")).encode())
    assert rejected(ring, f"{header}.{forged_payload}.{signature}")


@pytest.mark.parametrize(
    "secret", [b"", b"secret", b"changeme", b"your-256-bit-secret", b"password", b"jwt-secret"]
)
def test_empty_and_common_hmac_secrets(
    ring: KeyRing, hmac_key: dict[str, object], secret: bytes
) -> None:
    header = {"alg": "HS256", "kid": hmac_key["kid"], "typ": "at+jwt"}
    assert rejected(ring, forge_hmac(secret, claims(), header))


@pytest.mark.parametrize(
    "kid",
    [
        "../../../../etc/passwd",
        "/dev/null",
        "' OR '1'='1' --",
        "x" * 10_000,
        1,
        0,
        None,
        "",
        ["list"],
        {"obj": 1},
        "unknown-kid",
    ],
)
def test_hostile_or_unknown_kid(hmac_key: dict[str, object], kid: object) -> None:
    counted = KeyRing.parse(ring_text(hmac_key))
    secret = jwt.PyJWK(hmac_key).key
    header = {"alg": "HS256", "typ": "at+jwt", "kid": kid}
    if kid is None:
        del header["kid"]
    assert rejected(counted, forge_hmac(secret, claims(), header))
    assert counted.stats["signature_checks"] == 0, "no key is tried for a bad kid"


def test_embedded_jwk_is_refused() -> None:
    attacker = new_jwk("EdDSA")
    public = {k: v for k, v in attacker.items() if k != "d"}
    ring = KeyRing.parse(ring_text(attacker))  # even if the kid matches a ring key
    token = sign_with(attacker, claims(), jwk=public)
    assert rejected(ring, token)


@pytest.fixture
def listener() -> Iterator[tuple[str, list[bytes]]]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    received: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            received.append(conn.recv(4096) or b"<connected>")
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/jwks.json", received
    stop.set()
    thread.join(2)
    server.close()


@pytest.mark.parametrize("parameter", ["jku", "x5u"])
def test_jku_and_x5u_are_refused_and_never_fetched(
    ring: KeyRing, rsa_key: dict[str, object], listener: tuple[str, list[bytes]], parameter: str
) -> None:
    url, received = listener
    token = sign_with(rsa_key, claims(), **{parameter: url})
    assert rejected(ring, token)
    time.sleep(0.3)
    assert received == [], "the verifier must never contact a URL from the token"


@pytest.mark.parametrize(
    "bad",
    [
        {"exp": int(time.time()) - 60},
        {"nbf": int(time.time()) + 3600},
        {"iat": int(time.time()) + 3600},
        {"exp": None},
        {"iat": None},
        {"nbf": None},
        {"jti": None},
        {"sub": None},
        {"iss": None},
        {"aud": None},
        {"aud": "someone-else"},
        {"aud": ["app", "someone-else"]},
        {"iss": "https://evil.example"},
    ],
)
def test_claims(ring: KeyRing, rsa_key: dict[str, object], bad: dict[str, object]) -> None:
    assert rejected(ring, sign_with(rsa_key, claims(**bad)))


def test_leeway_is_small(ring: KeyRing, rsa_key: dict[str, object]) -> None:
    token = sign_with(rsa_key, claims(exp=int(time.time()) - 31))
    assert rejected(ring, token)
    generous = ring.verify
    with pytest.raises(TokenRejected):
        generous(token, typ="at+jwt", issuer="app", audience="app", leeway=3600)


def test_unknown_crit(ring: KeyRing, rsa_key: dict[str, object]) -> None:
    token = sign_with(rsa_key, claims(), crit=["exp-policy"], **{"exp-policy": 1})
    assert rejected(ring, token)


def test_wrong_typ(ring: KeyRing, rsa_key: dict[str, object]) -> None:
    assert rejected(ring, sign_with(rsa_key, claims(), typ="JWT"))
    assert rejected(ring, sign_with(rsa_key, claims(), typ="refresh+jwt"))


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "..",
        "a.b",
        "a.b.c",
        "e30.e30.",
        "x" * 10_000,
        "eyJhbGciOiJIUzI1NiJ9." + "A" * 50_000 + ".sig",
    ],
)
def test_garbage(ring: KeyRing, token: str) -> None:
    assert rejected(ring, token)


def test_other_issuers_key_with_our_kid(ring: KeyRing, rsa_key: dict[str, object]) -> None:
    impostor = {**new_jwk("RS256"), "kid": rsa_key["kid"]}
    assert rejected(ring, sign_with(impostor, claims()))
