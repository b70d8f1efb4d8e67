"""Cloud SDKs are optional: the base install pulls none, and nothing imports them until a
reference to their provider is used."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.support.server import ROOT, base_env, run_cli

CLOUD_SDKS = {
    "boto3",
    "botocore",
    "aioboto3",
    "google-cloud-secret-manager",
    "google-auth",
    "google-api-core",
    "azure-keyvault-secrets",
    "azure-identity",
    "azure-core",
    "hvac",
    "moto",
}
SDK_MODULES = ("boto3", "botocore", "google", "azure", "hvac", "moto")


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _project() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_base_requirements_contain_no_cloud_sdk() -> None:
    base = {_name(r) for r in _project()["dependencies"]}
    assert not base & CLOUD_SDKS


def test_each_provider_has_its_extra_and_cloud_has_all() -> None:
    extras = _project()["optional-dependencies"]
    assert {_name(r) for r in extras["aws"]} == {"boto3"}
    assert {_name(r) for r in extras["gcp"]} == {"google-cloud-secret-manager"}
    assert {_name(r) for r in extras["azure"]} == {
        "azure-keyvault-secrets",
        "azure-keyvault-keys",
        "azure-identity",
    }
    assert {_name(r) for r in extras["vault"]} == {"hvac"}
    assert "fastapi-secrets-template[aws,gcp,azure,vault]" in extras["cloud"]


def test_the_app_and_cli_import_no_sdk_until_a_reference_needs_it() -> None:
    code = (
        "import sys, app.main, app.cli, app.secrets.store, app.db\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {SDK_MODULES!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "[]"


def test_a_missing_extra_fails_startup_naming_the_extra(tmp_path: Path) -> None:
    # Hide boto3 as if `[aws]` were not installed (the rest of the environment is real).
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['boto3'] = None\n")
    env = base_env(JWT_KEYS="aws-sm://prod/jwt", PYTHONPATH=str(tmp_path))
    result = run_cli("config", "check", env=env)
    assert result.returncode == 1
    assert "JWT_KEYS (from JWT_KEYS=aws-sm://prod/jwt)" in result.stderr
    assert "pip install '.[aws]'" in result.stderr
