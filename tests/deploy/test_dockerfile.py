"""The Dockerfile: hadolint-clean, multi-stage, pinned base, non-root numeric USER, exec-form
commands, a HEALTHCHECK without curl, and a build context that keeps secrets out."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from pathlib import Path

import pytest

from tests.deploy.tools import ROOT, run, tool

DOCKERFILE = ROOT / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


@pytest.fixture(scope="module")
def parsed() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


def test_hadolint_passes() -> None:
    result = run([tool("hadolint"), "--no-color", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nCMD python -m app serve\n")
    result = run([tool("hadolint"), "--no-color", str(bad)])
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # `latest` tag


def test_multi_stage_with_a_pinned_base(parsed: list[tuple[str, str]]) -> None:
    args = {k: v for k, v in (a.split("=", 1) for kw, a in parsed if kw == "ARG" and "=" in a)}
    stages = [rest for kw, rest in parsed if kw == "FROM"]
    assert len(stages) >= 2, "build dependencies belong in a builder stage"
    assert any(" AS builder" in s for s in stages)
    base = args["PYTHON_IMAGE"]
    # An exact patch release (X.Y.Z) or a digest: never `latest` or a floating minor tag.
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base
    runtime = stages[-1]
    assert runtime.startswith("${PYTHON_IMAGE}")


def test_runtime_stage_has_only_the_venv_and_the_app(parsed: list[tuple[str, str]]) -> None:
    last_from = max(i for i, (kw, _) in enumerate(parsed) if kw == "FROM")
    runtime = parsed[last_from:]
    copies = [rest for kw, rest in runtime if kw == "COPY"]
    sources = {shlex.split(c)[-2] if "--from" not in c else "venv" for c in copies}
    assert sources <= {"venv", "alembic.ini", "migrations", "app", "docker/rotate_k8s_secret.py"}
    assert any(c.startswith("--from=builder /opt/venv") for c in copies)
    runs = " ".join(rest for kw, rest in runtime if kw == "RUN")
    for forbidden in ("apt-get", "pip install", "gcc", "build-essential", "curl"):
        assert forbidden not in runs, f"{forbidden!r} in the runtime stage"


def test_runs_as_a_non_root_numeric_user(parsed: list[tuple[str, str]]) -> None:
    args = {k: v for k, v in (a.split("=", 1) for kw, a in parsed if kw == "ARG" and "=" in a)}
    users = [rest for kw, rest in parsed if kw == "USER"]
    assert users, "no USER: the image would run as root"
    user = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], users[-1])
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), user
    assert int(uid) > 0, user
    assert not gid or (gid.isdigit() and int(gid) > 0), user


def test_exec_form_entrypoint_and_command(parsed: list[tuple[str, str]]) -> None:
    final = {kw: rest for kw, rest in parsed}
    assert json.loads(final["ENTRYPOINT"]) == ["python", "-m", "app"]
    assert json.loads(final["CMD"]) == ["serve"]
    env = " ".join(rest for kw, rest in parsed if kw == "ENV")
    assert "HOST=0.0.0.0" in env, "inside a container the server must listen on all interfaces"
    assert re.search(r"GRACEFUL_TIMEOUT_SECONDS=\d+", env)
    assert "APP_ENV=production" in env, "the image defaults to the strict mode"


def test_healthcheck_uses_python_not_curl(parsed: list[tuple[str, str]]) -> None:
    checks = [rest for kw, rest in parsed if kw == "HEALTHCHECK"]
    assert len(checks) == 1
    command = json.loads(checks[0][checks[0].index("CMD") + 3 :].strip())
    assert command[:2] == ["python", "-c"]
    assert "urllib" in command[2]
    assert "/health/live" in command[2]
    assert "curl" not in checks[0]
    assert "wget" not in checks[0]
    compile(command[2], "<healthcheck>", "exec")


def test_no_secret_is_baked_in(parsed: list[tuple[str, str]]) -> None:
    for keyword, rest in parsed:
        if keyword in ("ENV", "ARG"):
            assert not re.search(r"(PASSWORD|JWT_KEYS|CREDENTIALS|TOKEN)", rest), rest


def _dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a parent matches too."""
    excluded = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.rstrip("/")
        regex = fnmatch.translate(pattern).replace(".*", "[^/]*")
        regex = regex.replace("[^/]*[^/]*/", "(.*/)?").replace("[^/]*[^/]*", ".*")
        if any(re.match(regex, prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_secrets_and_caches_out() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in lines if p.strip() and not p.lstrip().startswith("#")]
    for path in (
        ".env",
        ".env.production",
        "secrets/jwt_keys",
        "secrets/database_password",
        "k8s/overlays/dev/secrets/jwt_keys",
        ".git/config",
        ".venv/bin/python",
        "app/__pycache__/main.cpython-311.pyc",
        ".pytest_cache/v/cache",
        "tests/conftest.py",
        "app/.env",
    ):
        assert _dockerignore_excludes(patterns, path), f"{path} would enter the build context"
    for path in (
        "app/main.py",
        "app/secrets/store.py",
        "migrations/env.py",
        "alembic.ini",
        "pyproject.toml",
        "uv.lock",
        "docker/rotate_k8s_secret.py",
    ):
        assert not _dockerignore_excludes(patterns, path), f"{path} is needed by the build"


def test_builds_with_the_legacy_builder_and_no_registry_but_the_base() -> None:
    """`DOCKER_BUILDKIT=0` must work: a `# syntax=` line makes BuildKit pull a frontend image
    from a registry, and the legacy builder has no `RUN --mount`, `COPY --chmod/--link` or
    heredocs."""
    text = DOCKERFILE.read_text()
    assert not re.search(r"(?im)^#\s*syntax\s*=", text)
    for keyword, rest in instructions(text):
        if keyword in ("RUN", "COPY", "ADD"):
            assert not re.search(r"--(mount|chmod|link|network|security)\b", rest), rest
            assert "<<" not in rest, f"heredoc in {keyword} {rest}"
        if keyword == "FROM":
            image = rest.split()[0]
            # Only the pinned base (through its ARG) or an earlier stage.
            assert image == "${PYTHON_IMAGE}", rest


def test_dependencies_are_installed_from_the_lock(parsed: list[tuple[str, str]]) -> None:
    last_from = max(i for i, (kw, _) in enumerate(parsed) if kw == "FROM")
    builder = parsed[:last_from]
    copies = [shlex.split(rest) for kw, rest in builder if kw == "COPY"]
    assert ["pyproject.toml", "uv.lock", "./"] in copies
    runs = " ".join(rest for kw, rest in builder if kw == "RUN")
    assert "uv sync --locked" in runs, "a stale lock must fail the build, never be re-resolved"
    assert "--no-install-project" in runs
    assert "-r requirements" not in runs
