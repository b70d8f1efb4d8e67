"""`python -m bench`: run every target, print one line each, write `bench/results.md`.

Usage: python -m bench [--only 1,2,3,4,5,6]
Exit status is 0 when the benchmarks ran (whatever their verdicts), 1 when one could not run,
or with --strict when any target failed.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench import report, wrk
from bench.report import Result
from bench.services import ROOT, bench_environment, bench_server, cpu_count, signed_in_account

_CLOUD_LINE = re.compile(
    r"^5\. (?P<name>[^:]+): (?P<ratio>[\d.]+) (?P<detail>\(.*\))\s+"
    r"target <= (?P<target>[\d.]+)"
)


def cloud_startup() -> list[Result]:
    """Target 5 lives in `bench/cloud_startup.py` (real SDKs against the local fakes)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.cloud_startup"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    results = []
    for line in done.stdout.splitlines():
        match = _CLOUD_LINE.match(line.strip())
        if match:
            results.append(
                Result(
                    f"5{'abc'[len(results)] if len(results) < 3 else ''}",
                    match["name"],
                    float(match["ratio"]),
                    "<=",
                    float(match["target"]),
                    match["detail"].strip("()"),
                )
            )
    if not results:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        results.append(
            Result(
                "5",
                "startup with 10 cloud secrets x 200 ms",
                None,
                "<=",
                1.5,
                "did not run: " + " / ".join(tail),
            )
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--only", default="1,2,3,4,5,6", help="comma-separated target numbers")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any target fails")
    args = parser.parse_args(argv)
    wanted = set(args.only.split(","))

    results: list[Result] = []
    load_before = os.getloadavg()[0]

    def emit(new: list[Result]) -> None:
        for result in new:  # progress; the summary below is the table
            print(f"  measured {result.number}: {result.ratio}", file=sys.stderr, flush=True)
        results.extend(new)

    if wanted & {"1", "2", "4", "6"}:
        wrk.ensure_wrk()
        with (
            bench_environment() as env,
            tempfile.TemporaryDirectory() as logs,
            bench_server(env, Path(logs)) as server,
        ):
            from bench.api_key_auth import api_key_auth
            from bench.login_storm import login_storm
            from bench.throughput import auth_overhead, users_me

            account = signed_in_account(server)
            steps: list[tuple[str, Callable[[], list[Result]]]] = [
                ("1", lambda: [auth_overhead(server, account)]),
                ("2", lambda: [users_me(server, account)]),
                ("4", lambda: login_storm(server, account)),
                ("6", lambda: [api_key_auth(server, account)]),  # bench/api_key_auth.py
            ]
            for number, step in steps:
                if number in wanted:
                    emit(step())
    if "3" in wanted:
        from bench.keyring_cost import keyring_size

        emit([keyring_size()])
    if "5" in wanted:
        emit(cloud_startup())

    environment = (
        f"{cpu_count()} CPUs, Python {platform.python_version()}, one uvicorn "
        "worker with uvloop + httptools, load from wrk on the same machine; "
        f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
        "(anything near the CPU count means other work shared the machine)"
    )
    results.sort(key=lambda r: r.number)
    for result in results:
        print(result.line())
    if wanted >= {"1", "2", "3", "4", "5"}:
        path = report.write(results, environment)
        print(f"results written to {path.relative_to(ROOT)}")
    else:
        print("partial run (--only): bench/results.md left as it was")
    failed = [r for r in results if not r.passed]
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
