"""Print the runtime requirements declared in pyproject.toml, one per line, for `pip install -r`.

The image's builder stage installs the app's DEPENDENCIES from this list (pinned by
constraints.txt) before it copies any source, so editing `app/` does not invalidate the cached
dependency layer. The app itself is not pip-installed: the runtime image runs it from /app.

Standard library only (it runs in the bare builder image): `python requirements_from_pyproject.py
[--extras aws,gcp] [pyproject.toml]`. Self-references such as `fastapi-secrets-template[aws,gcp]`
(the `cloud` extra) are expanded.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_SELF_REFERENCE = re.compile(r"^\s*([A-Za-z0-9._-]+)\s*\[([^\]]*)\]\s*$")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(project: dict[str, Any], extras: Sequence[str]) -> list[str]:
    """Dependencies plus those of `extras`, self-referencing extras expanded, order kept."""
    own_name = _canonical(project["name"])
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    result: list[str] = list(project.get("dependencies", []))
    pending = [extra.strip() for extra in extras if extra.strip()]
    seen: set[str] = set()
    while pending:
        extra = pending.pop(0)
        if extra in seen:
            continue
        if extra not in optional:
            raise SystemExit(f"unknown extra {extra!r}; known: {', '.join(sorted(optional))}")
        seen.add(extra)
        for requirement in optional[extra]:
            match = _SELF_REFERENCE.match(requirement)
            if match and _canonical(match.group(1)) == own_name:
                pending.extend(part.strip() for part in match.group(2).split(","))
            elif requirement not in result:
                result.append(requirement)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyproject", nargs="?", default="pyproject.toml")
    parser.add_argument("--extras", default="", help="comma-separated extras, e.g. aws,vault")
    args = parser.parse_args(argv)
    with Path(args.pyproject).open("rb") as handle:
        project = tomllib.load(handle)["project"]
    for line in requirements(project, args.extras.split(",")):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
