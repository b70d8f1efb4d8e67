"""KeyRing (SPEC section 4): formats, kids, one alg per key, which key signs, what is public."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time

import jwt
import pytest

from app.keys.signing import KeyRing, KeyRingError, TokenRejected
from tests.security.keys import claims, new_jwk, ring_text, sign_with


def verify(ring: KeyRing, token: str) -> dict[str, object]:
    return ring.verify(token, typ="at+jwt", issuer="app", audience="app")


def rfc7638_oct(secret: bytes) -> str:
    k = base64.urlsafe_b64encode(secret).rstrip(b"=").decode()
    canonical = '{"k":"' + k + '","kty":"oct"}'
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_raw_secrets_first_is_newest_and_kid_is_the_rfc7638_thumbprint() -> None:
    newest, older = secrets.token_urlsafe(40), secrets.token_urlsafe(40)
    ring = KeyRing.parse(f"{newest}\n{older}\n")
    assert [key.kid for key in ring.keys] == [
        rfc7638_oct(newest.encode()),
        rfc7638_oct(older.encode()),
    ]
    assert all(key.alg == "HS256" for key in ring.keys)
    signing = ring.signing_key()
    assert signing is not None
    assert signing.kid == rfc7638_oct(newest.encode())


def test_rfc7638_example_thumbprint() -> None:
    # RFC 7638 section 3.1: the published example key and its thumbprint.
    from app.keys.signing import jwk_thumbprint

    example = {
        "kty": "RSA",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6t"
        "Soc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v"
        "-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08"
        "qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8"
        "awapJzKnqDKgw",
    }
    assert jwk_thumbprint(example) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_newest_key_whose_nbf_passed_signs() -> None:
    now = time.time()
    old = new_jwk("EdDSA", now=now - 1000)
    future = new_jwk("ES256", now=now, activate_in=3600)
    ring = KeyRing.parse(ring_text(future, old))
    assert ring.signing_key(now) is not None
    assert ring.signing_key(now).kid == old["kid"]  # type: ignore[union-attr]
    assert ring.signing_key(now + 3601).kid == future["kid"]  # type: ignore[union-attr]
    # The verify-only key already verifies what it will sign.
    token = sign_with(future, claims())
    assert verify(ring, token)["iss"] == "app"


def test_sign_puts_kid_and_typ_in_the_header() -> None:
    document = new_jwk("RS256")
    ring = KeyRing.parse(ring_text(document))
    token = ring.sign(claims(), "at+jwt")
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "RS256", "kid": document["kid"], "typ": "at+jwt"}
    assert verify(ring, token)["sub"]


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512", "EdDSA", "ES256", "RS256"])
def test_every_supported_alg_round_trips(alg: str) -> None:
    ring = KeyRing.parse(ring_text(new_jwk(alg)))
    assert verify(ring, ring.sign(claims(), "at+jwt"))["aud"] == "app"


@pytest.mark.parametrize(
    ("mutation", "fragment"),
    [
        ({"alg": "none"}, "alg must be one of"),
        ({"alg": "PS256"}, "alg must be one of"),
        ({"alg": None}, "alg must be one of"),
        ({"alg": "RS256"}, "needs kty RSA"),
        ({"kid": ""}, "kid must be"),
        ({"kid": "k" * 129}, "kid must be"),
        ({"nbf": "tomorrow"}, "nbf must be a number"),
        ({"use": "enc"}, "use must be"),
    ],
)
def test_bad_keys_are_refused_naming_the_key_not_its_material(
    mutation: dict[str, object], fragment: str
) -> None:
    document = {**new_jwk("EdDSA"), **mutation}
    if mutation.get("alg", "") is None:
        del document["alg"]
    with pytest.raises(KeyRingError) as caught:
        KeyRing.parse(ring_text(document))
    assert fragment in str(caught.value)
    assert document["d"] not in str(caught.value)
    assert document["x"] not in str(caught.value)


def test_unparsable_rings_never_show_material() -> None:
    private = new_jwk("RS256")
    broken = {**private, "n": private["n"][:-10] + "!!!!"}
    for text in [
        "",
        "   \n ",
        "{not json " + private["d"],
        ring_text(broken),
        '{"keys": 5}',
        json.dumps({"keys": [private, private]}),
    ]:
        with pytest.raises(KeyRingError) as caught:
            KeyRing.parse(text)
        assert private["d"] not in str(caught.value)
        assert private["n"][:40] not in str(caught.value)


def test_public_jwks_has_no_private_members_and_no_hmac_keys() -> None:
    documents = [new_jwk(alg) for alg in ("EdDSA", "ES256", "RS256", "HS256")]
    ring = KeyRing.parse(ring_text(*documents))
    published = ring.public_jwks()["keys"]
    assert {key["kid"] for key in published} == {d["kid"] for d in documents[:3]}
    for key in published:
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(key)
        assert key["use"] == "sig"
    assert KeyRing.parse(secrets.token_urlsafe(40)).public_jwks() == {"keys": []}


def test_weak_key_problems_name_kids() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    weak = rsa.generate_private_key(65537, 1024)  # noqa: S505 - weak on purpose
    small = RSAAlgorithm.to_jwk(weak, as_dict=True)
    small.update({"kid": "small-rsa", "alg": "RS256"})
    short = {
        "kty": "oct",
        "k": base64.urlsafe_b64encode(b"x" * 16).decode().rstrip("="),
        "kid": "short",
        "alg": "HS256",
    }
    strong = new_jwk("EdDSA")
    ring = KeyRing.parse(ring_text(small, short, strong))
    problems = ring.weak_key_problems()
    assert len(problems) == 2
    assert any("small-rsa" in p and "2048" in p for p in problems)
    assert any("short" in p and "32 bytes" in p for p in problems)
    placeholder = KeyRing.parse("changeme").weak_key_problems()
    assert len(placeholder) == 1
    assert "placeholder" in placeholder[0]
    assert "changeme" not in placeholder[0]


def test_kid_lookup_tries_exactly_one_key_in_a_ring_of_1000() -> None:
    documents = [
        {
            "kty": "oct",
            "k": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("="),
            "kid": f"k{i}",
            "alg": "HS256",
        }
        for i in range(1000)
    ]
    ring = KeyRing.parse(ring_text(*documents))
    target = documents[777]
    token = sign_with(target, claims())
    assert verify(ring, token)["iss"] == "app"
    assert ring.stats["signature_checks"] == 1
    # A token with an unknown kid, even one validly signed by a ring key, tries none at all.
    renamed = sign_with({**target, "kid": "nope"}, claims())
    with pytest.raises(TokenRejected):
        verify(ring, renamed)
    assert ring.stats["signature_checks"] == 1


def test_a_single_jwk_as_printed_by_keys_generate_is_a_ring_of_one() -> None:
    document = new_jwk("EdDSA")
    ring = KeyRing.parse(json.dumps(document))
    assert [key.kid for key in ring.keys] == [document["kid"]]
    assert verify(ring, ring.sign(claims(), "at+jwt"))["sub"]
