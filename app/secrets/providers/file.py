"""Local files: `X_FILE`, `file:///abs/path` references, and files in `SECRETS_DIR`.

Only ONE trailing newline is stripped (editors add one; a key may legitimately end in spaces).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from app.secrets.errors import SecretAccessDenied, SecretFetchError, SecretNotFound
from app.secrets.provider import Fetched

#: A signature that changes when the file is replaced (rename, `..data` swap) or rewritten.
Signature = tuple[str, int, int, int] | None


def strip_one_newline(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


def read_secret_file(path: Path) -> Fetched:
    try:
        real = path.resolve(strict=True)
        stat = real.stat()
        text = real.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SecretNotFound(f"file {path} does not exist") from None
    except PermissionError:
        raise SecretAccessDenied(f"file {path} is not readable") from None
    except IsADirectoryError:
        raise SecretFetchError(f"{path} is a directory, not a file") from None
    except UnicodeDecodeError:
        raise SecretFetchError(f"file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise SecretFetchError(f"file {path} cannot be read ({exc.strerror})") from None
    return Fetched(strip_one_newline(text), version=f"mtime:{stat.st_mtime_ns}")


def file_signature(path: Path) -> Signature:
    """Cheap change probe: the resolved target and its stat identity."""
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return None
    return (real, st.st_ino, st.st_mtime_ns, st.st_size)


def find_in_secret_dirs(name: str, directories: list[Path]) -> Path | None:
    """The file `name` in the last directory that has it, refusing symlinks that escape.

    Kubernetes mounts look like `name -> ..data/name`, `..data -> ..2026_11_28_12_00_00.123`;
    both stay inside the mount, so they are followed. A link pointing outside is ignored.
    """
    return scan_secret_dirs(name, directories).found


@dataclass(frozen=True)
class DirScan:
    """Outcome of looking for `name` in `SECRETS_DIR`: the winning file, and what was refused."""

    found: Path | None
    refused: Path | None = None  # set when the LAST directory's entry had to be refused
    reason: str = ""


def scan_secret_dirs(name: str, directories: list[Path]) -> DirScan:
    """Later directories win. If the winning entry is a symlink leaving its directory (or not a
    regular file), it is refused and reported rather than silently replaced by an earlier one."""
    scan = DirScan(None)
    for directory in directories:
        candidate = directory / name
        if not os.path.lexists(candidate):
            continue
        try:
            root = directory.resolve(strict=True)
            target = candidate.resolve(strict=True)
        except OSError:
            scan = DirScan(None, candidate, "is a dangling symlink or cannot be resolved")
            continue
        if not target.is_relative_to(root):
            scan = DirScan(None, candidate, f"is a symlink leaving {directory}; refused")
        elif not target.is_file():
            scan = DirScan(None, candidate, "is not a regular file")
        else:
            scan = DirScan(candidate)
    return scan
