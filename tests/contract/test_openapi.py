"""Property-based contract tests (schemathesis v4) against the app's own OpenAPI document, in
process with the real lifespan (PostgreSQL, Redis): for generated valid and invalid requests,
with and without a valid bearer token, no response is a 5xx and every response conforms to the
documented status codes, content types, headers and schemas.

Bounded (`MAX_EXAMPLES` per operation and mode) and derandomized, so a run is reproducible and
fits in `make test`. The schema is read from `app.openapi()` at collection time (no services
needed); requests go through schemathesis' ASGI client, which runs the app's lifespan."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.api.routing import REFUSES_VALID_INPUT
from app.config import Settings
from app.main import create_app

MAX_EXAMPLES = 50
BASE_URL = f"http://{asgi.HOST}"


def _schema() -> schemathesis.BaseSchema:
    offline = Settings(
        _env_file=None,
        app_env="test",
        jwt_keys=secrets.token_urlsafe(48),
        secrets_dir="/nonexistent",
    )
    return schemathesis.openapi.from_dict(create_app(offline).openapi())


SCHEMA = _schema()
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
# Invalid input can only be generated for operations that take some.
CASES = [
    pytest.param(operation, mode, id=f"{operation.label} {mode.value}")
    for operation in OPERATIONS
    for mode in GenerationMode
    if mode is GenerationMode.POSITIVE
    or {"parameters", "requestBody"} & operation.definition.raw.keys()
]

bounded = hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def asgi_client(settings: Settings) -> Iterator[asgi.ASGIClient]:
    with asgi.get_client(create_app(settings)) as client:
        yield client
    asgi.shutdown_lifespans()


@pytest.fixture
def bearer(asgi_client: asgi.ASGIClient) -> dict[str, str]:
    """A real account's access token, obtained through the API itself."""
    email, password = f"fuzz-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(16)
    registered = asgi_client.post(
        "/api/v1/auth/register", json={"email": email, "password": password}
    )
    assert registered.status_code == 201, registered.text
    login = asgi_client.post("/api/v1/auth/login", data={"username": email, "password": password})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def _fuzz(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    client: asgi.ASGIClient,
    headers: dict[str, str] | None = None,
) -> None:
    # Refusals of well-formed requests that depend on state (a wrong code, a used token) are
    # declared by the operation itself (`app.api.routing.refuses_valid_input`).
    refusals = set(operation.definition.raw.get(REFUSES_VALID_INPUT, []))

    @given(case=operation.as_strategy(generation_mode=mode))
    @bounded
    def run(case: schemathesis.Case) -> None:
        response = case.call(base_url=BASE_URL, session=client, headers=headers)
        excluded = [positive_data_acceptance] if response.status_code in refusals else []
        case.validate_response(response, headers=headers, excluded_checks=excluded)

    run()


@pytest.mark.parametrize(("operation", "mode"), CASES)
def test_anonymous_requests_honour_the_contract(
    operation: schemathesis.APIOperation, mode: GenerationMode, asgi_client: asgi.ASGIClient
) -> None:
    _fuzz(operation, mode, asgi_client)


@pytest.mark.parametrize(("operation", "mode"), CASES)
def test_authenticated_requests_honour_the_contract(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    asgi_client: asgi.ASGIClient,
    bearer: dict[str, str],
) -> None:
    _fuzz(operation, mode, asgi_client, bearer)
