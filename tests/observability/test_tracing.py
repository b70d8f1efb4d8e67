"""OpenTelemetry: off unless OTEL_EXPORTER_OTLP_ENDPOINT is set; when set, requests, SQL and
Redis commands are exported over OTLP/HTTP (here to a receiver on 127.0.0.1), without secrets."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from app.main import create_app
from tests.api.auth_helpers import PASSWORD, login, new_email, register
from tests.conftest import SettingsFactory
from tests.support.app import client_for, lifespan
from tests.support.cloud.http import serving


class Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, bytes]] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # http.server's naming
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.server.requests.append((self.path, body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving(Receiver()) as server:
        yield server


def has_otel_middleware(app: object) -> bool:
    layer = app.build_middleware_stack()  # type: ignore[attr-defined]
    while layer is not None:
        if type(layer).__name__ == "OpenTelemetryMiddleware":
            return True
        layer = getattr(layer, "app", None)
    return False


async def test_tracing_is_off_by_default(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings())
    assert not has_otel_middleware(app)


async def test_requests_sql_and_redis_are_exported_without_secrets(
    make_settings: SettingsFactory,
    receiver: Receiver,
    jwt_secret: str,
) -> None:
    app = create_app(
        make_settings(
            otel_exporter_otlp_endpoint=receiver.endpoint, otel_service_name="traced-test"
        )
    )
    assert has_otel_middleware(app)
    email = new_email()
    async with lifespan(app), client_for(app) as client:
        await register(client, email)
        tokens = (await login(client, email)).json()
    # Leaving the lifespan shut the provider down, which flushed the queued spans.
    assert receiver.requests, "no spans were exported"
    assert {path for path, _ in receiver.requests} == {"/v1/traces"}
    names: set[str] = set()
    services: set[str] = set()
    dump = b""
    for _, body in receiver.requests:
        export = ExportTraceServiceRequest.FromString(body)
        dump += body
        for resource_spans in export.resource_spans:
            for attribute in resource_spans.resource.attributes:
                if attribute.key == "service.name":
                    services.add(attribute.value.string_value)
            for scope_spans in resource_spans.scope_spans:
                names.update(span.name for span in scope_spans.spans)
    assert services == {"traced-test"}
    assert "POST /api/v1/auth/register" in names
    assert "POST /api/v1/auth/login" in names
    assert any(name.startswith(("INSERT", "SELECT")) for name in names), names
    assert any(
        name.split()[0]
        in {
            "EVALSHA",
            "EVAL",
            "GET",
            "SET",
            "INCR",
            "DEL",
            "HSET",
            "PIPELINE",
            "MULTI",
            "EXISTS",
            "ZADD",
            "PUBLISH",
        }
        for name in names
    ), names
    for secret in (PASSWORD, jwt_secret, tokens["access_token"], tokens["refresh_token"], email):
        assert secret.encode() not in dump
