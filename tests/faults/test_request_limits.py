"""Request limits over real TCP to `python -m app serve` (the HTTP parser is part of the
behaviour): oversized bodies are 413 whether or not they declare a length, oversized headers
and malformed or mistyped bodies are 4xx, and nothing a client sends makes a 5xx."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from app.api.limits import BodySizeLimitMiddleware
from tests.support.server import ServerProcess, base_env, serve

MAX_BODY_BYTES = 4096


@pytest.fixture(scope="module")
def server(
    database_url: str,
    redis_url: str,
    redis_prefix: str,
    jwt_secret: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerProcess]:
    env = base_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=redis_prefix,
        JWT_KEYS=jwt_secret,
        MAX_BODY_BYTES=str(MAX_BODY_BYTES),
        LOG_LEVEL="warning",
    )
    with serve(env, tmp_path_factory.mktemp("limits")) as process:
        yield process


def raw_request(server: ServerProcess, request: bytes) -> int:
    """Send bytes as they are (no client-side normalisation); return the response status."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        head = sock.recv(65536).split(b"\r\n", 1)[0]
    return int(head.split()[1])


def test_a_20kb_header_is_a_4xx(server: ServerProcess) -> None:
    response = httpx.get(
        f"{server.url}/health/live", headers={"X-Padding": "a" * 20_000}, timeout=10
    )
    assert 400 <= response.status_code < 500
    assert response.status_code == 431


def test_many_headers_adding_up_past_the_limit_are_a_4xx(server: ServerProcess) -> None:
    headers = {f"X-Field-{i}": "b" * 1000 for i in range(20)}
    response = httpx.get(f"{server.url}/health/live", headers=headers, timeout=10)
    assert response.status_code == 431


def test_ordinary_headers_pass(server: ServerProcess) -> None:
    response = httpx.get(
        f"{server.url}/health/live", headers={"Authorization": "Bearer " + "c" * 1500}, timeout=10
    )
    assert response.status_code == 200


def test_declared_body_over_the_limit_is_413_before_it_is_sent(server: ServerProcess) -> None:
    head = (
        f"POST /health/live HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n"
    ).encode()
    assert raw_request(server, head) == 413


def test_garbage_content_length_is_a_4xx(server: ServerProcess) -> None:
    request = b"POST /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n"
    status = raw_request(server, request)
    assert 400 <= status < 500


REGISTER = "/api/v1/auth/register"


def test_declared_json_body_over_the_limit_is_413(server: ServerProcess) -> None:
    body = b'{"email": "big@example.com", "password": "' + b"p" * MAX_BODY_BYTES + b'"}'
    response = httpx.post(
        f"{server.url}{REGISTER}",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 413


def test_chunked_body_over_the_limit_is_413(server: ServerProcess) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"email": "big@example.com", "password": "'
        for _ in range(MAX_BODY_BYTES // 512 + 2):
            yield b"p" * 512
        yield b'"}'

    # A generator body is sent with Transfer-Encoding: chunked and no Content-Length.
    response = httpx.post(
        f"{server.url}{REGISTER}",
        content=chunks(),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert response.status_code == 413


def test_chunked_body_under_the_limit_is_processed(server: ServerProcess) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"email": "not-an-email", '
        yield b'"password": "short"}'

    response = httpx.post(
        f"{server.url}{REGISTER}",
        content=chunks(),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"email": "a@example.com", "password": '),
        ("application/json", b"\xff\xfe\x00garbage"),
        ("application/json", b"[1, 2, 3]"),
        ("application/json", b'"just a string"'),
        ("application/json", b""),
        ("text/plain", b'{"email": "a@example.com", "password": "long enough pw"}'),
        ("application/xml", b"<user><email>a@example.com</email></user>"),
        ("application/x-www-form-urlencoded", b"email=a%40example.com&password=long+enough"),
        ("multipart/form-data; boundary=xyz", b"--xyz\r\nbroken"),
        ("application/json; charset=utf-16", b'{"email": 1}'),
    ],
)
def test_malformed_or_mistyped_bodies_are_4xx(
    server: ServerProcess, content_type: str, body: bytes
) -> None:
    response = httpx.post(
        f"{server.url}{REGISTER}", content=body, headers={"Content-Type": content_type}, timeout=10
    )
    assert 400 <= response.status_code < 500, (response.status_code, response.text)


def test_malformed_login_form_is_4xx(server: ServerProcess) -> None:
    for content_type, body in [
        ("application/x-www-form-urlencoded", b"%%%=&&&"),
        ("application/json", b'{"username": "x", "password": "y"}'),
        ("multipart/form-data; boundary=q", b"--q\r\nno end"),
    ]:
        response = httpx.post(
            f"{server.url}/api/v1/auth/login",
            content=body,
            headers={"Content-Type": content_type},
            timeout=10,
        )
        assert 400 <= response.status_code < 500, (content_type, response.status_code)


@pytest.mark.parametrize(("http_version", "counted"), [("2", True), ("1.1", False)])
async def test_a_body_without_a_length_header_is_counted_unless_http_1_rules_it_out(
    http_version: str, counted: bool
) -> None:
    # HTTP/2 (another ASGI server) sends bodies with neither Content-Length nor
    # Transfer-Encoding; HTTP/1.x cannot, so such a request's (empty) body is not wrapped.
    seen: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(len((await receive())["body"]))

    limited = BodySizeLimitMiddleware(app, max_body_bytes=10)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"x" * 11, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "http_version": http_version, "method": "POST", "headers": []}
    await limited(scope, receive, send)
    if counted:
        assert seen == []
        assert sent[0]["status"] == 413
    else:
        assert seen == [11]
