"""Running the CLI on a pseudo-terminal, as a person at a shell would: prompts, progress bars."""

from __future__ import annotations

import os
import pty
import select
import sys
import time
from collections.abc import Sequence

from tests.support.server import ROOT


def on_a_terminal(
    env: dict[str, str], *args: str, answers: Sequence[str] = (), timeout: float = 60
) -> tuple[int, str]:
    """Run `python -m app ARGS` with a pseudo-terminal as its controlling terminal and
    stdin/stdout/stderr, type each of `answers` after a prompt (a line ending in ":"), and
    return (exit status, everything the terminal showed)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdin/stdout/stderr and /dev/tty are the pty
        os.chdir(ROOT)
        argv = [sys.executable, "-m", "app", *args]
        os.execve(argv[0], argv, {**env, "COLUMNS": "100"})  # noqa: S606 - fixed argv
    shown = b""
    answered_at = 0  # answer each prompt once: only a prompt shown after the last answer counts
    pending = list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child exited and closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            if pending and shown[answered_at:].rstrip().endswith(b":"):
                os.write(fd, pending.pop(0).encode() + b"\n")
                answered_at = len(shown)
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")
