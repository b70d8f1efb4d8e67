"""uv.lock is the single source of pins: `make install` and the image's builder both install
from it, with the same uv, and a lock that no longer matches pyproject.toml is an error."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.tools import ROOT, run


def _makefile_uv_version() -> str:
    found = re.search(r"^UV_VERSION\s*:?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert found, "the Makefile pins uv with UV_VERSION"
    return found.group(1)


def _uv() -> Path:
    uv = ROOT / ".tools" / f"uv-{_makefile_uv_version()}" / "bin" / "uv"
    if not uv.exists():
        pytest.fail(f"{uv} is missing: run `make install` (it bootstraps uv from PyPI)")
    return uv


def _export(*extras: str) -> set[str]:
    args = [str(_uv()), "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes"]
    args += ["--no-header", "--no-annotate", "--offline"]
    for extra in extras:
        args += ["--extra", extra]
    result = run(args)
    assert result.returncode == 0, result.stderr
    return {
        line.split("==", 1)[0].lower()
        for line in result.stdout.splitlines()
        if line and not line.startswith(("#", " "))
    }


def test_the_lock_matches_pyproject() -> None:
    result = run([str(_uv()), "lock", "--check", "--offline"])
    assert result.returncode == 0, (
        "uv.lock does not match pyproject.toml: run `make lock` and commit uv.lock\n"
        + result.stderr
    )


def _declared(project: dict[str, Any]) -> set[tuple[str, str]]:
    """(name, extra) of every requirement in pyproject.toml; extra "" for the core ones."""
    found = {(_canonical(r), "") for r in project["dependencies"]}
    for extra, requirements in project["optional-dependencies"].items():
        found |= {(_canonical(r), extra) for r in requirements}
    return found


def _locked(lock: dict[str, Any]) -> set[tuple[str, str]]:
    """The same, as recorded in uv.lock when it was resolved."""
    root = next(p for p in lock["package"] if p["name"] == "fastapi-secrets-template")
    found = set()
    for requirement in root["metadata"]["requires-dist"]:
        extra = re.search(r"extra == '([^']+)'", requirement.get("marker", ""))
        found.add((requirement["name"], extra.group(1) if extra else ""))
    return found


def _canonical(requirement: str) -> str:
    name = re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_declared_requirement_is_in_the_lock() -> None:
    """Offline and exact: a dependency added without `make lock` is named here."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    assert _declared(project) == _locked(lock), "run `make lock` and commit uv.lock"


def test_the_comparison_notices_a_requirement_added_without_locking() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    project["optional-dependencies"]["dev"].append("tomli-w>=1")
    assert _declared(project) - _locked(lock) == {("tomli-w", "dev")}


def test_makefile_and_dockerfile_use_the_same_uv() -> None:
    found = re.search(r"^ARG UV_VERSION=(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert found, "the Dockerfile pins uv with ARG UV_VERSION"
    assert found.group(1) == _makefile_uv_version()


def test_no_second_source_of_pins() -> None:
    assert not (ROOT / "constraints.txt").exists()
    assert not list(ROOT.glob("requirements*.txt"))
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    assert any(p["name"] == "fastapi-secrets-template" for p in lock["package"])


def test_the_image_gets_no_dev_tool_and_only_the_sdks_asked_for() -> None:
    core = _export()
    assert {"fastapi", "asyncpg", "alembic", "uvicorn"} <= core
    assert not core & {"pytest", "ruff", "mypy", "boto3", "hvac", "moto", "import-linter"}
    cloud = _export("cloud")
    assert {"boto3", "google-cloud-secret-manager", "azure-identity", "hvac"} <= cloud
    assert not cloud & {"pytest", "ruff", "mypy", "moto"}


def test_dev_extra_has_the_tools_make_lint_runs() -> None:
    dev = _export("dev")
    assert {"ruff", "mypy", "import-linter", "pytest"} <= dev
