"""Paths and runners for the deploy validators (all offline, all from the dev extra or the OS)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """A validator's executable: the venv's own (installed by `make install`), else PATH."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"`{name}` is not installed: run `make install` (it is in the dev extra)")
    return found


def run(args: list[str], cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def check_jsonschema(builtin: str, *files: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with one of its vendored schemas (no network)."""
    args = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", builtin]
    return run([*args, *(str(f) for f in files)])
