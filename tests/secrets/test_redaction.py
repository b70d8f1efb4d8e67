"""The log redaction filter: every secret value the live store holds, in plain, URL-encoded and
base64 form, and every Authorization/Bearer credential, is masked before any handler writes it."""

from __future__ import annotations

import base64
import io
import json
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from app.config import SECRETS, Settings
from app.secrets import SecretStore
from app.secrets.redaction import REDACTED, install_redaction, register_secret_source
from tests.secrets.helpers import clear_secret_env


def forms(value: str) -> list[str]:
    raw = value.encode()
    return [
        value,
        quote(value, safe=""),
        quote_plus(value),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    ]


@pytest.fixture
def sink() -> Iterator[io.StringIO]:
    """A handler on a private logger, with the filter installed the way configure_logging does."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    install_redaction(handler)
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield stream
    logger.removeHandler(handler)


@pytest.fixture
async def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SecretStore]:
    clear_secret_env(monkeypatch)
    password_file = tmp_path / "database_password"
    password_file.write_text("Pa$$ word/with+specials=" + secrets.token_hex(8))
    jwks = {
        "keys": [
            {
                "kty": "oct",
                "kid": "k1",
                "alg": "HS256",
                "k": base64.urlsafe_b64encode(secrets.token_bytes(48)).decode().rstrip("="),
            }
        ]
    }
    settings = Settings(
        _env_file=None,
        app_env="test",
        secrets_dir=str(tmp_path / "none"),
        jwt_keys=json.dumps(jwks),
        database_password_file=password_file,
        redis_password="redis-" + secrets.token_urlsafe(24),
        database_credentials=json.dumps(
            {"username": "app", "password": "cred-" + secrets.token_hex(12)}
        ),
    )
    opened = await SecretStore.open(settings, SECRETS)
    unregister = register_secret_source(opened)
    yield opened
    unregister()
    await opened.aclose()


def value(store: SecretStore, name: str) -> str:
    secret = store.get(name)
    assert secret is not None
    return secret.get_secret_value()


async def test_every_form_of_every_secret_is_masked(store: SecretStore, sink: io.StringIO) -> None:
    logger = logging.getLogger("tests.redaction")
    jwk_k = json.loads(value(store, "JWT_KEYS"))["keys"][0]["k"]
    db_credentials_password = json.loads(value(store, "DATABASE_CREDENTIALS"))["password"]
    plain = [
        value(store, n)
        for n in ("DATABASE_PASSWORD", "REDIS_PASSWORD", "JWT_KEYS", "DATABASE_CREDENTIALS")
    ]
    plain += [jwk_k, db_credentials_password]
    for secret in plain:
        for form in forms(secret):
            logger.info("in the message %s!", form)
            logger.info("in the template " + form)  # what careless code does
            logger.warning("as an extra", extra={"detail": {"nested": [form]}})
            try:
                raise RuntimeError(f"exception text {form}")
            except RuntimeError:
                logger.exception("while connecting to postgres://app:%s@db/app", form)
    output = sink.getvalue()
    assert output.count(REDACTED) >= len(plain) * 5 * 3
    for secret in plain:
        for form in forms(secret):
            assert form not in output
    assert "exception text" in output  # the traceback is kept, only the value is masked
    assert "Traceback" in output


async def test_rotated_value_is_masked_from_the_moment_it_loads(
    store: SecretStore, sink: io.StringIO, tmp_path: Path
) -> None:
    new_password = "rotated-" + secrets.token_urlsafe(20)
    (tmp_path / "database_password").write_text(new_password)
    assert await store.refresh() == frozenset({"DATABASE_PASSWORD"})
    logging.getLogger("tests.redaction").error("new password is %s", new_password)
    assert new_password not in sink.getvalue()
    assert REDACTED in sink.getvalue()


@pytest.mark.parametrize(
    "line",
    [
        "Authorization: Bearer abc.def-ghi_jkl+mno",
        "headers={'authorization': 'Basic dXNlcjpwYXNzd29yZA=='}",
        "sent bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2ln",
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2ln in a query",
        '"Proxy-Authorization": "Digest username=x, response=abcdef0123"',
        "cannot connect to postgresql+asyncpg://app:url-pw-abcdef0123@db:5432/app",
    ],
)
def test_credentials_in_headers_and_tokens_are_masked(sink: io.StringIO, line: str) -> None:
    logging.getLogger("tests.redaction").info(line)
    output = sink.getvalue()
    assert REDACTED in output
    for credential in (
        "abc.def-ghi_jkl+mno",
        "dXNlcjpwYXNzd29yZA==",
        "c2lnbmF0dXJlc2ln",
        "response=abcdef0123",
        "url-pw-abcdef0123",
    ):
        assert credential not in output


@pytest.mark.parametrize(
    "line",
    [
        "GET /health/ready 200 basic check ok",
        "connecting to redis://127.0.0.1:6379/0 and postgresql://app@db:5432/app",
    ],
)
def test_ordinary_lines_are_untouched(sink: io.StringIO, line: str) -> None:
    logging.getLogger("tests.redaction").info(line)
    assert sink.getvalue().strip() == f"INFO {line}"


async def test_configure_logging_installs_the_filter_on_every_root_handler() -> None:
    from app.logs import configure_logging
    from app.secrets.redaction import SecretRedactionFilter

    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        configure_logging(Settings(_env_file=None, app_env="test", jwt_keys="x" * 40))
        assert root.handlers
        for handler in root.handlers:
            assert any(isinstance(f, SecretRedactionFilter) for f in handler.filters)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)


@pytest.mark.parametrize(
    ("line", "credential"),
    [
        ("GET /reset?token=tok-abcdef0123 200", "tok-abcdef0123"),
        (
            "HTTP Request: GET https://vault:8200/v1/x?password=hunter2-pw-0123 200",
            "hunter2-pw-0123",
        ),
        ("callback /cb?code=1&access_token=at-abcdef0123&state=s1", "at-abcdef0123"),
        ("callback /cb?state=s1&refresh_token=rt-abcdef0123#frag", "rt-abcdef0123"),
        ("login?user=a&pass=pass-abcdef0123", "pass-abcdef0123"),
        ("login?user=a&pwd=pwd-abcdef0123", "pwd-abcdef0123"),
        ("hook?secret=sec-abcdef0123&x=1", "sec-abcdef0123"),
        ("https://api.example.com/v1?api_key=key-abcdef0123", "key-abcdef0123"),
        ("https://api.example.com/v1?client_secret=cs-abcdef0123", "cs-abcdef0123"),
        ("POST /x?PASSWORD=upper-abcdef0123", "upper-abcdef0123"),
        ("body password=form-abcdef0123&username=a", "form-abcdef0123"),
        ("cannot reach redis://:redis-pw-abcdef0123@cache:6379/0", "redis-pw-abcdef0123"),
        ("amqp://guest:amqp-pw-abcdef0123@rabbit//", "amqp-pw-abcdef0123"),
    ],
)
def test_passwords_in_urls_and_query_parameters_are_masked(
    sink: io.StringIO, line: str, credential: str
) -> None:
    logging.getLogger("tests.redaction").info(line)
    logging.getLogger("tests.redaction").info("as an extra", extra={"url": line})
    output = sink.getvalue()
    assert credential not in output
    assert output.count(REDACTED) >= 1


def test_query_masking_keeps_the_other_parameters() -> None:
    from app.secrets.redaction import redact

    masked = redact("/cb?code=1&access_token=at-abcdef0123&state=s1&sort_by=name", [])
    assert masked == f"/cb?code=1&access_token={REDACTED}&state=s1&sort_by=name"


def test_a_string_found_clean_is_masked_once_it_becomes_a_secret(sink: io.StringIO) -> None:
    """Strings found clean are remembered, but only until the set of secret values changes."""
    value = "later-secret-" + secrets.token_hex(8)
    logger = logging.getLogger("tests.redaction")
    logger.info(value)
    logger.info(value)  # remembered as clean
    assert sink.getvalue().count(value) == 2
    unregister = register_secret_source(lambda: [value])
    try:
        logger.info(value)
    finally:
        unregister()
    assert sink.getvalue().splitlines()[-1] == f"INFO {REDACTED}"


def test_records_from_a_second_handler_are_not_rewritten_twice() -> None:
    """Every root handler carries a filter; the first rewrites the record, the others see the
    mark and leave it (masking a second time would mask the mask, and cost as much again)."""
    from app.secrets.redaction import SecretRedactionFilter

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "Bearer %s", ("abcdefghijkl",), None)
    assert SecretRedactionFilter().filter(record)
    first = record.getMessage()
    assert first == f"Bearer {REDACTED}"
    record.msg = "changed after the first filter"  # a second filter would not look again
    assert SecretRedactionFilter().filter(record)
    assert record.getMessage() == "changed after the first filter"
