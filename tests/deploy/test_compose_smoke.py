"""The compose smoke (tests/deploy/compose_smoke.py, `make compose-smoke`): the real stack under
Docker, opt-in (`pytest -m compose`; `.ci/run` runs it when it can start a Docker engine).
The secret-scan helpers are checked here without Docker, on every run."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest

from tests.deploy import compose_smoke
from tests.deploy.tools import ROOT

SCRIPT = ROOT / "tests" / "deploy" / "compose_smoke.py"


def test_the_scan_looks_for_each_secret_as_written_and_encoded() -> None:
    password = "s3cr3t-Pa55word/with+chars"
    ring = json.dumps({"keys": [{"kty": "oct", "kid": "kid-1", "alg": "HS256", "k": "K" * 43}]})
    needles = compose_smoke._variants([password + "\n", ring])
    assert password in needles
    assert "s3cr3t-Pa55word%2Fwith%2Bchars" in needles
    assert base64.b64encode(password.encode()).decode().rstrip("=") in needles
    assert "K" * 43 in needles  # a JWK's secret member on its own
    assert "kid-1" not in needles  # ... but not its public members
    assert not any(len(needle) < 8 for needle in needles)


def test_the_script_needs_only_the_standard_library() -> None:
    """`make compose-smoke` runs it with the system python3, before any install."""
    code = (
        "import importlib.util as u\n"
        f"spec = u.spec_from_file_location('smoke', {str(SCRIPT)!r})\n"
        "spec.loader.exec_module(u.module_from_spec(spec))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.compose
@pytest.mark.timeout(900)
def test_compose_smoke() -> None:
    problem = compose_smoke._docker_available()
    if problem is not None:
        pytest.fail(
            f"compose smoke NOT RUN: {problem} (opted in with -m compose; on a Debian machine "
            "without a registry, ../shared/tools/docker-standins/setup starts an engine)"
        )
    result = subprocess.run(
        [sys.executable, str(SCRIPT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    print(result.stdout[-20000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "compose smoke PASSED" in result.stdout
