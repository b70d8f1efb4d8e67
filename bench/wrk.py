"""wrk, the load generator: installed from the OS packages when missing, run, and parsed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


class WrkError(RuntimeError):
    pass


def ensure_wrk() -> str:
    """Path of `wrk`, installing the Debian/Ubuntu package if it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "install", "-y", "-qq", "wrk"],
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "wrk"],
    ):
        subprocess.run([*sudo, *command], env=env, check=False, capture_output=True)
        found = shutil.which("wrk")
        if found:
            return found
    raise WrkError("wrk is not installed and could not be installed: apt-get install wrk")


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    requests: int
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise WrkError(f"unexpected latency figure {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse(output: str) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if not (rps and total and p50 and p99):
        raise WrkError(f"could not parse wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return WrkResult(
        requests_per_second=float(rps.group(1)),
        requests=int(total.group(1)),
        p50_ms=_duration_ms(p50.group(1)),
        p99_ms=_duration_ms(p99.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def lua_script(
    *,
    method: str = "GET",
    body: str | None = None,
    bodies: Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
    delay_ms: int | None = None,
) -> str:
    """A wrk script: one request shape, or `bodies` sent in turn (one per request)."""
    lines = [f'wrk.method = "{method}"']
    if body is not None:
        lines.append(f"wrk.body = {_lua_string(body)}")
    if bodies:
        lines.append("bodies = {" + ", ".join(_lua_string(b) for b in bodies) + "}")
        lines.append("turn = 0")
        lines.append(
            "function request() turn = turn % #bodies + 1 "
            "return wrk.format(nil, nil, nil, bodies[turn]) end"
        )
    for name, value in (headers or {}).items():
        lines.append(f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}")
    if delay_ms is not None:
        # Pause between a connection's requests: a light-weight latency probe, not a load.
        lines.append(f"function delay() return {int(delay_ms)} end")
    return "\n".join(lines) + "\n"


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def command(
    url: str,
    *,
    duration: float,
    connections: int,
    threads: int = 1,
    script: str | None = None,
    timeout: float = 10,
) -> tuple[list[str], Path | None]:
    args = [
        ensure_wrk(),
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{duration:g}s",
        "--timeout",
        f"{timeout:g}s",
        "--latency",
    ]
    path = None
    if script is not None:
        handle = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)  # noqa: SIM115
        with handle:
            handle.write(script)
        path = Path(handle.name)
        args += ["-s", str(path)]
    return [*args, url], path


def start(url: str, **options: object) -> tuple[subprocess.Popen[str], Path | None]:
    """Start wrk in the background; `finish()` waits for it and parses the result."""
    args, path = command(url, **options)  # type: ignore[arg-type]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, path


def finish(
    started: tuple[subprocess.Popen[str], Path | None], *, allow_non_2xx: bool = False
) -> WrkResult:
    process, path = started
    try:
        output, _ = process.communicate(timeout=600)
    finally:
        if path is not None:
            path.unlink(missing_ok=True)
    if process.returncode != 0:
        raise WrkError(f"wrk failed ({process.returncode}):\n{output}")
    result = parse(output)
    if (result.non_2xx and not allow_non_2xx) or result.requests == 0:
        raise WrkError(f"the server answered errors, so throughput means nothing:\n{output}")
    return result


def run(url: str, **options: object) -> WrkResult:
    return finish(start(url, **options))
