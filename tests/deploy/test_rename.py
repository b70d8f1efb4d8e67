"""`make rename NAME=...` (docs/deploy.md, "Start your own project"): every place git tracks the
template's name is renamed, in its dashed and underscored spellings, and nothing else changes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.deploy.tools import ROOT


def _checkout_copy(target: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    for command in (["init", "-q"], ["add", "-A"]):
        subprocess.run(["git", *command], cwd=target, check=True)


def _occurrences(root: Path, needle: str) -> list[str]:
    found = subprocess.run(
        ["git", "grep", "-l", needle, "--", ":!uv.lock"], cwd=root, capture_output=True, text=True
    )
    return found.stdout.split()


def test_make_rename_renames_every_tracked_occurrence(tmp_path: Path) -> None:
    project = tmp_path / "copy"
    _checkout_copy(project)
    before = (project / "app" / "observability" / "tracing.py").read_text()
    assert _occurrences(project, "fastapi-secrets-template")
    # UV=/bin/true: the re-lock is uv's business (tests/deploy/test_lock.py covers the lock).
    renamed = subprocess.run(
        ["make", "rename", "NAME=acme-orders", "UV=/bin/true"],
        cwd=project, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert renamed.returncode == 0, renamed.stdout + renamed.stderr
    assert _occurrences(project, "fastapi-secrets-template") == []
    assert _occurrences(project, "fastapi_secrets_template") == []
    assert 'name = "acme-orders"' in (project / "pyproject.toml").read_text()
    assert "acme-orders" in (project / "k8s" / "base" / "namespace.yaml").read_text()
    after = (project / "app" / "observability" / "tracing.py").read_text()
    assert after == before.replace("fastapi-secrets-template", "acme-orders")
    refused = subprocess.run(
        ["make", "rename", "NAME=Bad Name", "UV=/bin/true"],
        cwd=project, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "usage: make rename NAME=" in refused.stdout + refused.stderr
