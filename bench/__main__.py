"""`python -m bench`: run every target, print one line each, write `bench/results.md`.

Usage: python -m bench [--only 0,1,2,3,4,5,6,7]
Exit status is 0 when the benchmarks ran (whatever their verdicts), 1 when one could not run,
or with --strict when any target failed. Every run, partial or not, appends one line to
`bench/history.jsonl` (commit, load, every ratio), so a regression shows as a changed ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import report, wrk
from bench.report import Result
from bench.services import (
    ROOT,
    bare_server,
    bench_environment,
    bench_server,
    cpu_count,
    signed_in_account,
)

ALL = "0,1,2,3,4,5,6,7"

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
    parser.add_argument("--only", default=ALL, help="comma-separated target numbers")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any target failed")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per throughput ratio")
    parser.add_argument("--seconds", type=float, help="seconds per wrk run in those rounds")
    args = parser.parse_args(argv)
    wanted = set(args.only.split(","))
    from bench import throughput

    throughput.ROUNDS = args.rounds or throughput.ROUNDS
    throughput.SECONDS = args.seconds or throughput.SECONDS

    results: list[Result] = []
    load_before = os.getloadavg()[0]

    def emit(new: list[Result]) -> None:
        for result in new:  # progress; the summary below is the table
            print(f"  measured {result.number}: {result.ratio}", file=sys.stderr, flush=True)
        results.extend(new)

    if wanted & {"0", "1", "2", "4", "6", "7"}:
        wrk.ensure_wrk()
        with (
            bench_environment() as env,
            tempfile.TemporaryDirectory() as logs,
            contextlib.ExitStack() as servers,
        ):
            from bench.api_key_auth import api_key_auth
            from bench.login_storm import LOGIN_CLIENTS, login_storm
            from bench.throughput import against_bare, auth_overhead, workers

            log_dir = Path(logs)
            # The product as users run it (default log level) and with LOG_LEVEL=warning.
            default = servers.enter_context(bench_server(env, log_dir))
            warning = servers.enter_context(bench_server(env, log_dir, LOG_LEVEL="warning"))
            account = signed_in_account(default)
            if wanted & {"0", "2"}:
                bare = servers.enter_context(bare_server(env, log_dir))
                emit(against_bare(bare, default, warning, account))
            if "1" in wanted:
                emit([auth_overhead(warning, account)])
            if "4" in wanted:
                storm = [account] + [signed_in_account(default) for _ in range(LOGIN_CLIENTS - 1)]
                emit(login_storm(default, storm))
            if "6" in wanted:
                # The product itself (`python -m app serve`, no bench routes), default log level.
                one, two = (
                    servers.enter_context(
                        bench_server(env, log_dir, module="app", args=("serve",), WORKERS=n)
                    )
                    for n in ("1", "2")
                )
                emit([workers(one, two, account, cpu_count())])
            if "7" in wanted:  # bench/api_key_auth.py
                emit([api_key_auth(warning, account)])
    if "3" in wanted:
        from bench.keyring_cost import keyring_size

        emit([keyring_size()])
    if "5" in wanted:
        emit(cloud_startup())

    load_after = os.getloadavg()[0]
    commit = report.commit()
    environment = (
        f"commit {commit}, {cpu_count()} CPUs, Python {platform.python_version()}, one uvicorn "
        "worker with uvloop + httptools, load from wrk on the same machine; "
        f"1-min load average {load_before:.1f} before, {load_after:.1f} after "
        "(anything near the CPU count means other work shared the machine)"
    )
    results.sort(key=lambda r: r.number)
    for result in results:
        print(result.line())
    history = report.append_history(results, commit, load_before, load_after, cpu_count())
    print(f"history appended to {history.relative_to(ROOT)}")
    if wanted >= set(ALL.split(",")):
        path = report.write(results, environment)
        print(f"results written to {path.relative_to(ROOT)}")
    else:
        print("partial run (--only): bench/results.md left as it was")
    failed = [r for r in results if not r.passed]
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
