"""Template ergonomics: .env.example documents every setting without values, git ignores local
secrets, the pre-commit config is valid, the CI workflow lints clean, and detect-secrets finds
nothing beyond the committed baseline."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from app.config import SECRETS, Settings
from tests.deploy.tools import ROOT, check_jsonschema, run, tool

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def _env_example_entries() -> dict[str, str]:
    entries = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            entries.setdefault(match.group(1), match.group(2))
    return entries


def test_env_example_documents_every_setting() -> None:
    documented = _env_example_entries()
    names = [name.upper() for name in Settings.model_fields] + list(SECRETS.names())
    missing = [name for name in names if name not in documented]
    assert not missing, f"add to .env.example: {missing}"


def test_env_example_holds_no_secret_value() -> None:
    text = (ROOT / ".env.example").read_text()
    for name in SECRETS.names():
        for line in text.splitlines():
            match = re.match(rf"^#?\s*{name}=(.*)$", line)
            if match:
                assert match.group(1) == "", f"{name} has a value in .env.example"
            assert not re.match(rf"^{name}(_FILE)?=", line), f"{name} is set (not commented)"


def test_git_ignores_local_secrets_and_env_files() -> None:
    for path in (".env", ".env.local", "secrets/jwt_keys", "k8s/overlays/dev/secrets/jwt_keys"):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
        assert ignored.returncode == 0, f"{path} is not git-ignored"
    for path in (".env.example", "app/secrets/store/store.py", "tests/secrets/__init__.py"):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
        assert ignored.returncode == 1, f"{path} must not be git-ignored"


def test_pre_commit_config_is_valid_and_runs_ruff_and_detect_secrets() -> None:
    result = run([sys.executable, "-m", "pre_commit", "validate-config", ".pre-commit-config.yaml"])
    assert result.returncode == 0, result.stdout + result.stderr
    text = (ROOT / ".pre-commit-config.yaml").read_text()
    assert "id: ruff-check" in text
    assert "id: detect-secrets" in text
    assert ".secrets.baseline" in text


def test_ci_workflow_passes_actionlint() -> None:
    result = run([tool("actionlint"), "-no-color", str(WORKFLOW)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_flags_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "on: push\njobs:\n  t:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
        "      - uses: actions/checkout@v5\n        with: {fetch-depht: 1}\n"
    )
    result = run([tool("actionlint"), "-no-color", str(bad)], cwd=tmp_path)
    assert result.returncode != 0


def test_ci_workflow_matches_the_github_workflow_schema() -> None:
    result = check_jsonschema("vendor.github-workflows", WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_make_test_with_postgres_and_redis_services() -> None:
    import yaml

    workflow = yaml.safe_load(WORKFLOW.read_text())
    job = workflow["jobs"]["test"]
    assert {"postgres", "redis"} <= set(job["services"])
    assert job["env"]["TEST_DATABASE_URL"].startswith("postgresql://postgres@127.0.0.1:5432/")
    assert job["env"]["TEST_REDIS_URL"].startswith("redis://127.0.0.1:6379/")
    assert [step.get("run") for step in job["steps"]][-1] == "make test"
    assert workflow["permissions"] == {"contents": "read"}


def test_detect_secrets_finds_nothing_beyond_the_baseline(tmp_path: Path) -> None:
    committed = ROOT / ".secrets.baseline"
    baseline = json.loads(committed.read_text())
    # `scan --baseline` rescans the git-tracked files with the baseline's plugins and filters
    # and rewrites the file it was given: hand it a copy.
    copy = tmp_path / "baseline.json"
    copy.write_text(committed.read_text())
    result = run([tool("detect-secrets"), "scan", "--baseline", str(copy)], timeout=120)
    assert result.returncode == 0, result.stderr

    def findings(data: dict[str, Any]) -> set[tuple[str, str]]:
        return {(p, f["hashed_secret"]) for p, fs in data["results"].items() for f in fs}

    new = findings(json.loads(copy.read_text())) - findings(baseline)
    assert not new, (
        f"possible secrets not in .secrets.baseline: {sorted(new)}. If they are test fixtures, "
        "run `detect-secrets scan --baseline .secrets.baseline`, audit, and commit the result."
    )
