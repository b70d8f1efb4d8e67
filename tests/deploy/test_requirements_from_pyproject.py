"""docker/requirements_from_pyproject.py: what the image's builder stage installs."""

from __future__ import annotations

import subprocess
import sys
import tomllib

from tests.deploy.tools import ROOT

SCRIPT = ROOT / "docker" / "requirements_from_pyproject.py"


def _requirements(*args: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args, str(ROOT / "pyproject.toml")],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.splitlines()


def test_core_dependencies_only_by_default() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert _requirements() == project["dependencies"]


def test_extras_are_added_and_self_references_expanded() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    cloud = _requirements("--extras", "cloud")
    for extra in ("aws", "gcp", "azure", "vault"):
        for requirement in optional[extra]:
            assert requirement in cloud
    assert not any(line.startswith("fastapi-secrets-template") for line in cloud)
    assert not any("pytest" in line for line in cloud)  # dev tools never enter the image


def test_an_unknown_extra_is_an_error() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--extras", "nope", str(ROOT / "pyproject.toml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "nope" in result.stderr
