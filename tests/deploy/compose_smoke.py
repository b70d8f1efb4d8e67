#!/usr/bin/env python3
"""`make compose-smoke`: run the Docker Compose stack for real, in a temporary copy of this
checkout, the way a developer does, and check what `make up` promises (issue 15).

In a copy of the checkout (tracked and untracked files that git does not ignore; so no
./secrets, no .venv), under a unique compose project name, image tag and published port (it
never touches a developer's own stack), it:
 1. runs `make up` detached and waits for health (the image is built, `secrets init` runs inside
    it, migrate runs once and says what it ran, db/redis/app are healthy);
 2. checks /health/ready = 200, registers, logs in, reads /users/me; registers again (409);
 3. runs `make config-check` (no rebuild; every secret from SECRETS_DIR);
 4. rotates the JWT ring with `make keys-rotate`: the old token still verifies, the JWKS lists
    the new key, tokens issued once it is active carry its kid and work;
 5. rotates the database password with `make db-password-rotate`: the old password is refused,
    the new one accepted, and once its connections are cut the app reconnects with the new one;
 6. rotates the Redis password with `make redis-password-rotate` and checks the app follows;
 7. `make down` (no anonymous volume left) then `make up`: the data is still there, migrate
    is a no-op;
 8. with ./secrets deleted and recreated against the old volume, `make up` fails and migrate
    says why in ONE line (then the old secrets are put back);
 9. scans `docker compose logs` (taken before every `down`), `docker inspect` of every container
    and the image history for every secret value ever written to ./secrets, the test user's
    password and every token issued; checks the db log does not hold the registered email;
10. always ends with `docker compose down -v`, removes the image tag and the copy.

Standard library only: it needs python3, make and Docker (engine + compose v2). Bounded: every
command has a timeout, and the whole run SMOKE_TIMEOUT seconds (default 600). Exit 0 when every
check passed; otherwise 1 with the failed checks listed (it goes on after a failed check when
the stack allows it, so one run shows every problem).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
#: A typical first user's uid: used for the app containers when this runs as root, so the
#: non-root path (APP_UID/APP_GID owning ./secrets) is what gets exercised.
NON_ROOT_UID = 1000
JWK_SECRET_MEMBERS = ("k", "d", "p", "q", "dp", "dq", "qi")


class Aborted(Exception):
    """The stack is in no state to go on."""


class Smoke:
    def __init__(self, timeout: float) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + timeout
        tag = secrets.token_hex(4)
        self.project = f"fstsmoke{tag}"
        self.image = f"fastapi-secrets-template:smoke-{tag}"
        self.port = _free_port()
        self.mail_port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.tmp = Path(tempfile.mkdtemp(prefix="compose-smoke-"))
        self.checkout = self.tmp / "checkout"
        self.failures: list[str] = []
        self.checks = 0
        self.captured: list[tuple[str, str]] = []  # (where, text) to scan for secrets
        self.secret_values: set[str] = set()
        self.db_log_text = ""  # the db service's logs, from every container it had
        self.uid = NON_ROOT_UID if os.geteuid() == 0 else os.getuid()
        self.gid = NON_ROOT_UID if os.geteuid() == 0 else os.getgid()
        self.env = {
            **os.environ,
            "COMPOSE_PROJECT_NAME": self.project,
            "APP_IMAGE": self.image,
            "APP_PORT": str(self.port),
            "MAIL_PORT": str(self.mail_port),
            "APP_UID": str(self.uid),
            "APP_GID": str(self.gid),
        }
        for name in ("COMPOSE_FILE", "COMPOSE_PROFILES", "DOCKER_HOST_PORT"):
            self.env.pop(name, None)
        self.volumes_before = self._volumes()

    # ------------------------------------------------------------------ plumbing
    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", flush=True)

    def check(self, ok: bool, what: str, detail: str = "") -> bool:
        self.checks += 1
        if ok:
            print(f"          ok   {what}", flush=True)
        else:
            self.failures.append(what + (f": {detail}" if detail else ""))
            print(f"          FAIL {what}" + (f"\n{_indent(detail)}" if detail else ""), flush=True)
        return ok

    def left(self, cap: float) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise Aborted(
                f"the smoke ran out of its time budget ({self.deadline - self.started:.0f} s)"
            )
        return min(cap, remaining)

    def run(
        self, args: Sequence[str], *, timeout: float = 120, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        try:
            result = subprocess.run(
                list(args),
                cwd=self.checkout,
                env=self.env,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.left(timeout),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise Aborted(f"`{' '.join(args)}` did not finish within {exc.timeout:.0f} s") from None
        self.captured.append((f"output of `{' '.join(args)}`", result.stdout + result.stderr))
        return result

    def make(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run(["make", "--no-print-directory", *args], timeout=timeout)

    def compose(self, *args: str, timeout: float = 60, stdin: str | None = None) -> str:
        result = self.run(["docker", "compose", *args], timeout=timeout, stdin=stdin)
        if result.returncode != 0:
            raise Aborted(f"docker compose {' '.join(args)} failed:\n{result.stderr[-2000:]}")
        return result.stdout

    def http(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        token: str | None = None,
    ) -> tuple[int, Any]:
        data = None
        headers = {"Accept": "application/json"}
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        # Always http://127.0.0.1:<port>: no other scheme can reach urlopen.
        url = self.base + path
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.left(15)) as response:  # noqa: S310
                status, body = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            return 0, str(exc)
        try:
            return status, json.loads(body) if body else None
        except ValueError:
            return status, body.decode(errors="replace")

    def wait_until(self, what: str, probe: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + self.left(timeout)
        while time.monotonic() < deadline:
            if probe():
                return True
            time.sleep(1)
        return probe()

    def ready(self) -> bool:
        status, body = self.http("GET", "/health/ready")
        return status == 200 and isinstance(body, dict) and body.get("status") == "ok"

    def remember_secrets(self) -> None:
        """Every value in ./secrets now (called before and after each rotation)."""
        directory = self.checkout / "secrets"
        for path in sorted(directory.iterdir()) if directory.is_dir() else []:
            if path.is_file():
                self.secret_values.add(path.read_text())

    def capture_stack(self, label: str) -> None:
        """Logs and inspect output of every container of the project, before it goes away."""
        logs = self.run(["docker", "compose", "logs", "--no-color", "--timestamps"], timeout=60)
        self.captured.append((f"docker compose logs ({label})", logs.stdout + logs.stderr))
        self.db_log_text += self.run(["docker", "compose", "logs", "--no-color", "db"]).stdout
        ids = self._container_ids()
        if ids:
            inspect = self.run(["docker", "inspect", *ids], timeout=60)
            self.captured.append((f"docker inspect ({label})", inspect.stdout))

    def psql_as_app(self, sql: str) -> subprocess.CompletedProcess[str]:
        """psql as `app` inside the db container (local trust: no password involved)."""
        command = ["psql", "-X", "-A", "-t", "-U", "app", "-d", "app", "-c", sql]
        return self.run(["docker", "compose", "exec", "-T", "db", *command], timeout=30)

    def try_password(self, password: str) -> str:
        """Connect as `app` from the app container over the compose network, where the server
        checks passwords (inside the db container loopback is trusted, as in the real image).
        The password goes through stdin, never argv. Returns "ok" or the error's class name."""
        code = (
            "import asyncio, sys, asyncpg\n"
            "password = sys.stdin.readline().rstrip('\\n')\n"
            "async def main():\n"
            "    try:\n"
            "        c = await asyncpg.connect(host='db', user='app', database='app',"
            " password=password, timeout=10)\n"
            "    except Exception as exc:\n"
            "        return type(exc).__name__\n"
            "    await c.close()\n"
            "    return 'ok'\n"
            "print(asyncio.run(main()))\n"
        )
        result = self.run(
            ["docker", "compose", "exec", "-T", "app", "python", "-c", code],
            timeout=60,
            stdin=password + "\n",
        )
        return (result.stdout.strip().splitlines() or [result.stderr.strip()[-300:]])[-1]

    def _container_ids(self) -> list[str]:
        result = subprocess.run(
            [
                "docker",
                "ps",
                "-a",
                "-q",
                "--filter",
                f"label=com.docker.compose.project={self.project}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return result.stdout.split()

    def _volumes(self) -> set[str]:
        result = subprocess.run(
            ["docker", "volume", "ls", "-q"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return set(result.stdout.split())

    # ------------------------------------------------------------------ the steps
    def copy_checkout(self) -> None:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout.split(b"\0")
        for raw in filter(None, listed):
            name = raw.decode()
            source = ROOT / name
            if source.is_file() and not source.is_symlink():
                (self.checkout / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, self.checkout / name)
        if os.geteuid() == 0:
            # As root, the app containers run as a non-root uid that owns ./secrets, like a
            # developer's own uid does (`make up` keeps an existing directory as it is).
            secrets_dir = self.checkout / "secrets"
            secrets_dir.mkdir(mode=0o700)
            os.chown(secrets_dir, self.uid, self.gid)
        self.say(
            f"copied the checkout to {self.checkout} (project {self.project}, port {self.port})"
        )

    def up(self, label: str, *, expect_failure: bool = False) -> subprocess.CompletedProcess[str]:
        self.say(f"make up ({label})")
        result = self.make("up", "UP_ARGS=-d --wait --wait-timeout 240", timeout=600)
        if not expect_failure and result.returncode != 0:
            self.capture_stack(f"failed up: {label}")
            raise Aborted(f"make up failed ({label}):\n{_tail(result)}\n{self._logs_tail()}")
        return result

    def _logs_tail(self) -> str:
        logs = self.run(["docker", "compose", "logs", "--no-color", "--tail", "30"], timeout=60)
        return logs.stdout[-4000:]

    def first_start(self) -> None:
        self.up("first start, fresh checkout")
        directory = self.checkout / "secrets"
        files = sorted(p.name for p in directory.iterdir())
        self.check(
            {"database_password", "jwt_keys", "redis_password"} <= set(files),
            "secrets init (inside the image) created the dev secret files",
            str(files),
        )
        modes = {p.name: oct(p.stat().st_mode & 0o777) for p in directory.iterdir()}
        self.check(
            all(mode == "0o600" for mode in modes.values())
            and directory.stat().st_mode & 0o777 == 0o700,
            "secret files are 0600 in a 0700 directory",
            str(modes),
        )
        owners = {p.name: (p.stat().st_uid, p.stat().st_gid) for p in directory.iterdir()}
        self.check(
            set(owners.values()) == {(self.uid, self.gid)},
            f"secret files belong to APP_UID:APP_GID ({self.uid}:{self.gid})",
            str(owners),
        )
        self.remember_secrets()
        states = self._states()
        for service in ("db", "redis", "app"):
            self.check(
                states.get(service, ("", ""))[1] == "healthy", f"{service} is healthy", str(states)
            )
        migrate = states.get("migrate", ("", ""))
        self.check(
            migrate[0] == "exited" and migrate[2] == 0, "migrate ran and exited 0", str(migrate)
        )
        logs = self.compose("logs", "--no-color", "migrate")
        self.check(
            logs.count("Running upgrade  -> 0001") == 1 and "database at revision" in logs,
            "migrate ran once and said what it ran",
            logs[-1500:],
        )
        users = self.run(["docker", "inspect", "-f", "{{.Config.User}}", f"{self.project}-app-1"])
        self.check(
            users.stdout.strip() == f"{self.uid}:{self.gid}",
            "the app container runs as APP_UID:APP_GID",
            users.stdout + users.stderr,
        )

    def _states(self) -> dict[str, tuple[str, str, int]]:
        raw = self.compose("ps", "-a", "--format", "json")
        rows = [json.loads(line) for line in raw.splitlines() if line.strip().startswith("{")]
        if not rows and raw.strip().startswith("["):
            rows = json.loads(raw)
        return {
            r["Service"]: (r.get("State", ""), r.get("Health", ""), r.get("ExitCode", -1))
            for r in rows
        }

    def api_flow(self) -> dict[str, str]:
        self.say("API: /health/ready, register, login, /users/me, duplicate register")
        status, body = self.http("GET", "/health/ready")
        self.check(
            status == 200 and body == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}},
            "/health/ready is 200 with database and redis ok",
            f"{status} {body}",
        )
        user = {
            "email": f"smoke-{secrets.token_hex(4)}@example.com",
            "password": secrets.token_urlsafe(18),
        }
        self.secret_values.add(user["password"])
        status, body = self.http("POST", "/api/v1/auth/register", json_body=user)
        self.check(
            status == 201 and body.get("email") == user["email"],
            "register is 201",
            f"{status} {body}",
        )
        tokens = self.login(user)
        status, body = self.http("GET", "/api/v1/users/me", token=tokens["access_token"])
        self.check(
            status == 200 and body.get("email") == user["email"],
            "/users/me is 200",
            f"{status} {body}",
        )
        status, body = self.http("POST", "/api/v1/auth/register", json_body=user)
        self.check(status == 409, "registering the same email again is 409", f"{status} {body}")
        return {**user, **tokens}

    def mail_flow(self, user: dict[str, str]) -> dict[str, str]:
        """A password reset through the compose mail catcher: the mailed link's token resets
        the password once; the token and both passwords must appear in no log (scan)."""
        self.say("password reset by mail, through the mail catcher service")
        status, _ = self.http(
            "POST", "/api/v1/auth/password/forgot", json_body={"email": user["email"]}
        )
        self.check(status == 202, "forgot is 202", str(status))
        mails: list[dict[str, str]] = []
        deadline = time.monotonic() + self.left(30)
        while time.monotonic() < deadline and not mails:
            url = f"http://127.0.0.1:{self.mail_port}/api/mails"
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    mails = [m for m in json.loads(response.read()) if user["email"] in m["to"]]
            except OSError:
                pass
            if not mails:
                time.sleep(0.5)
        if not self.check(bool(mails), "the reset mail reached the mail catcher"):
            return {}
        found = re.search(r"#token=([A-Za-z0-9_\-%.~]+)", mails[0]["text"])
        if not self.check(found is not None, "the mail holds a reset link"):
            return {}
        assert found is not None
        token = urllib.parse.unquote(found.group(1))
        new_password = secrets.token_urlsafe(18)
        self.secret_values.update({token, new_password})
        body = {"token": token, "new_password": new_password}
        status, _ = self.http("POST", "/api/v1/auth/password/reset", json_body=body)
        self.check(status == 204, "the mailed token resets the password", str(status))
        status, _ = self.http("POST", "/api/v1/auth/password/reset", json_body=body)
        self.check(status == 400, "the token works once", str(status))
        tokens = self.login({**user, "password": new_password}, "login with the new password")
        return {"password": new_password, **tokens}

    def login(
        self, user: dict[str, str], what: str = "login is 200 with a token pair"
    ) -> dict[str, str]:
        form = {"username": user["email"], "password": user["password"]}
        status, body = self.http("POST", "/api/v1/auth/login", form=form)
        ok = self.check(
            status == 200 and isinstance(body, dict) and "access_token" in body,
            what,
            f"{status} {body}",
        )
        if not ok:
            raise Aborted("cannot log in: the rest of the flow needs a token")
        tokens = {"access_token": body["access_token"], "refresh_token": body["refresh_token"]}
        self.secret_values.update(tokens.values())
        return tokens

    def config_check(self) -> None:
        self.say("make config-check")
        image_before = self._image_id()
        result = self.make("config-check", timeout=120)
        output = result.stdout + result.stderr
        self.check(result.returncode == 0, "make config-check exits 0", _tail(result))
        for name in ("DATABASE_PASSWORD", "REDIS_PASSWORD", "JWT_KEYS"):
            self.check(
                re.search(
                    rf"^{name}\s+dir\s+ok\s+SECRETS_DIR /run/secrets/{name.lower()}", output, re.M
                )
                is not None,
                f"config check: {name} resolved from SECRETS_DIR",
                output[-1500:],
            )
        self.check(
            "Step 1/" not in output
            and "Building" not in output
            and self._image_id() == image_before,
            "docker compose run reused the image (no rebuild)",
            output[-800:],
        )

    def _image_id(self) -> str:
        result = self.run(["docker", "image", "inspect", "-f", "{{.Id}}", self.image], timeout=30)
        return result.stdout.strip()

    def rotate_jwt(self, user: dict[str, str]) -> dict[str, str]:
        self.say("JWT ring: make keys-rotate ACTIVATE_IN=5")
        old_kid = _kid(user["access_token"])
        result = self.make("keys-rotate", "ACTIVATE_IN=5", timeout=300)
        self.check(result.returncode == 0, "make keys-rotate exits 0", _tail(result))
        activated_at = time.time() + 5
        self.remember_secrets()
        ring = json.loads((self.checkout / "secrets" / "jwt_keys").read_text())["keys"]
        new_kid = ring[0]["kid"]
        self.check(
            len(ring) == 2 and new_kid != old_kid and ring[1]["kid"] == old_kid,
            "the ring holds the new key first and keeps the old one",
            str([k.get("kid") for k in ring]),
        )
        self.check(
            self.wait_until("ready", self.ready, 60), "the app is ready again after its restart"
        )
        status, _ = self.http("GET", "/api/v1/users/me", token=user["access_token"])
        self.check(status == 200, "a token signed by the old key still verifies", str(status))
        status, jwks = self.http("GET", "/.well-known/jwks.json")
        kids = [k.get("kid") for k in jwks.get("keys", [])] if isinstance(jwks, dict) else []
        self.check(new_kid in kids, "the JWKS publishes the new (EdDSA) key", str(jwks))
        self.check(
            all(m not in k for k in jwks.get("keys", []) for m in JWK_SECRET_MEMBERS),
            "the JWKS holds public halves only",
        )
        time.sleep(max(0.0, activated_at - time.time()) + 1.5)
        tokens = self.login(user, "login after the activation delay is 200")
        self.check(
            _kid(tokens["access_token"]) == new_kid,
            "tokens issued once the new key is active carry its kid",
            f"{_kid(tokens['access_token'])} != {new_kid}",
        )
        status, _ = self.http("GET", "/api/v1/users/me", token=tokens["access_token"])
        self.check(status == 200, "a token signed by the new key verifies", str(status))
        status, _ = self.http("GET", "/api/v1/users/me", token=user["access_token"])
        self.check(
            status == 200, "the old key's token still verifies after the switch", str(status)
        )
        return tokens

    def rotate_database_password(self, user: dict[str, str]) -> None:
        self.say("database password: make db-password-rotate")
        path = self.checkout / "secrets" / "database_password"
        old = path.read_text().strip()
        inode = path.stat().st_ino
        result = self.make("db-password-rotate", timeout=120)
        self.check(result.returncode == 0, "make db-password-rotate exits 0", _tail(result))
        new = path.read_text().strip()
        self.remember_secrets()
        self.check(new != old and len(new) >= 32, "secrets/database_password holds a new value")
        self.check(path.stat().st_ino == inode, "the file was rewritten in place (same inode)")
        refused = self.try_password(old)
        self.check(refused == "InvalidPasswordError", "the old password is refused", refused)
        accepted = self.try_password(new)
        self.check(accepted == "ok", "the new password is accepted", accepted)
        # The pool keeps its open connections; cut them so the app has to open new ones.
        cut = self.psql_as_app(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity "
            "where usename = 'app' and pid <> pg_backend_pid()"
        )
        self.check(cut.returncode == 0, "the app's connections were cut", cut.stderr[-500:])
        self.check(
            self.wait_until("ready", self.ready, 60),
            "the app reconnects with the new password (/health/ready 200)",
        )
        second = {
            "email": f"smoke-{secrets.token_hex(4)}@example.com",
            "password": secrets.token_urlsafe(18),
        }
        self.secret_values.add(second["password"])
        status, body = self.http("POST", "/api/v1/auth/register", json_body=second)
        self.check(status == 201, "register works on new connections", f"{status} {body}")
        user["second_email"], user["second_password"] = second["email"], second["password"]
        logs = self.compose("logs", "--no-color", "app")
        self.check(
            re.search(
                r'"secret\.rotated".*"DATABASE_PASSWORD"|"DATABASE_PASSWORD".*"secret\.rotated"',
                logs,
            )
            is not None
            or ("secret.rotated" in logs and "DATABASE_PASSWORD" in logs),
            "the app logged the rotation (audit secret.rotated)",
        )

    def rotate_redis_password(self, user: dict[str, str]) -> None:
        self.say("Redis password: make redis-password-rotate")
        path = self.checkout / "secrets" / "redis_password"
        old = path.read_text()
        result = self.make("redis-password-rotate", timeout=300)
        self.check(result.returncode == 0, "make redis-password-rotate exits 0", _tail(result))
        self.remember_secrets()
        self.check(path.read_text() != old, "secrets/redis_password holds a new value")
        self.check(
            self.wait_until("ready", self.ready, 90), "the app is ready with the new Redis password"
        )
        self.login(user, "login (rate limits in Redis) works after the Redis rotation")

    def restart_keeps_data(self, user: dict[str, str]) -> None:
        self.capture_stack("before down")
        self.say("make down, then make up: the data must survive")
        result = self.make("down", timeout=180)
        self.check(result.returncode == 0, "make down exits 0", _tail(result))
        left = self._volumes() - self.volumes_before
        self.check(
            left == {f"{self.project}_pgdata", f"{self.project}_redisdata"},
            "down leaves only the two named volumes (no anonymous one)",
            str(sorted(left)),
        )
        self.up("after down")
        self.check(self.ready(), "/health/ready is 200 after down/up")
        self.login(user, "the first user logs in after down/up (data kept)")
        self.login(
            {"email": user["second_email"], "password": user["second_password"]},
            "the user registered after the database rotation logs in too",
        )
        logs = self.compose("logs", "--no-color", "migrate")
        self.check(
            "Running upgrade" not in logs and "database at revision" in logs,
            "migrate found nothing to do and said so",
            logs[-800:],
        )

    def stale_volume(self) -> None:
        self.capture_stack("before the stale-volume check")
        self.say(
            "./secrets recreated against the existing volume: migrate must say why, in one line"
        )
        self.make("down", timeout=180)
        saved = self.tmp / "secrets.saved"
        (self.checkout / "secrets").rename(saved)
        if os.geteuid() == 0:
            (self.checkout / "secrets").mkdir(mode=0o700)
            os.chown(self.checkout / "secrets", self.uid, self.gid)
        try:
            result = self.up("fresh secrets, old volume", expect_failure=True)
            self.remember_secrets()
            self.check(result.returncode != 0, "make up fails", _tail(result))
            logs = self.compose("logs", "--no-color", "migrate")
            lines = [line for line in logs.splitlines() if "migrate: " in line]
            self.check(
                len(lines) == 1
                and 'password authentication failed for user "app"' in lines[0]
                and "docker compose down -v" in lines[0]
                and "Traceback" not in logs,
                "migrate prints ONE line naming the cause and the fix",
                logs[-2000:],
            )
            self.capture_stack("stale volume")
            self.make("down", timeout=180)
        finally:
            shutil.rmtree(self.checkout / "secrets", ignore_errors=True)
            saved.rename(self.checkout / "secrets")
        self.up("secrets restored")
        self.check(self.ready(), "/health/ready is 200 with the original secrets back")

    def scan(self, user: dict[str, str]) -> None:
        self.capture_stack("final")
        history = self.run(
            ["docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", self.image]
        )
        self.captured.append(("docker history of the app image", history.stdout))
        image = self.run(["docker", "image", "inspect", self.image])
        self.captured.append(("docker image inspect", image.stdout))
        needles = _variants(self.secret_values)
        size = sum(len(text) for _, text in self.captured)
        self.say(
            f"scanning {len(self.captured)} captured outputs ({size} chars) for "
            f"{len(self.secret_values)} secret values ({len(needles)} forms)"
        )
        leaks = sorted(
            {where for where, text in self.captured for needle in needles if needle in text}
        )
        self.check(
            not leaks,
            "no secret value in any log, inspect output or command output",
            "\n".join(leaks),
        )
        self.check(
            user["email"] not in self.db_log_text,
            "the db log does not hold the registered email (duplicate registration)",
            next((line for line in self.db_log_text.splitlines() if user["email"] in line), ""),
        )

    def teardown(self) -> None:
        self.say("docker compose down -v, remove the image and the copy")
        try:
            subprocess.run(
                ["docker", "compose", "down", "-v", "--remove-orphans", "--timeout", "10"],
                cwd=self.checkout,
                env=self.env,
                capture_output=True,
                timeout=180,
                check=False,
            )
            subprocess.run(
                ["docker", "rmi", "-f", self.image], capture_output=True, timeout=120, check=False
            )
            left = self._volumes() - self.volumes_before
            containers = self._container_ids()
            self.check(
                not left and not containers,
                "down -v left no container and no volume",
                f"{left} {containers}",
            )
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _kid(token: str) -> str:
    header = token.split(".", 1)[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))).get("kid"))


def _tail(result: subprocess.CompletedProcess[str], chars: int = 2500) -> str:
    return (result.stdout + result.stderr)[-chars:]


def _indent(text: str) -> str:
    return "\n".join("               " + line for line in text.splitlines()[-40:])


def _fragments(value: str) -> Iterator[str]:
    """The value, each of its lines, and the secret members of a JSON document (JWK Set)."""
    yield value
    yield value.strip()
    yield from (line.strip() for line in value.splitlines())
    try:
        document = json.loads(value)
    except ValueError:
        return
    for key in document.get("keys", []) if isinstance(document, dict) else []:
        yield from (str(key[m]) for m in JWK_SECRET_MEMBERS if m in key)


def _variants(values: Iterable[str]) -> set[str]:
    """Each secret as written, URL-encoded and base64-encoded: how a leak would look."""
    found: set[str] = set()
    for value in values:
        for fragment in _fragments(value):
            if len(fragment) < 8:  # '{', '}', short JSON lines are not secrets
                continue
            raw = fragment.encode()
            found.update(
                {
                    fragment,
                    urllib.parse.quote(fragment, safe=""),
                    urllib.parse.quote_plus(fragment),
                    base64.b64encode(raw).decode().rstrip("="),
                    base64.urlsafe_b64encode(raw).decode().rstrip("="),
                }
            )
    return {v for v in found if len(v) >= 8 and not v.startswith(('"', "{", "["))}


def _docker_available() -> str | None:
    try:
        info = subprocess.run(
            ["docker", "info"], capture_output=True, text=True, timeout=30, check=False
        )
        compose = subprocess.run(
            ["docker", "compose", "version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker: {exc}"
    if info.returncode != 0:
        return "no Docker engine answers `docker info`"
    if compose.returncode != 0:
        return "`docker compose` (Compose v2) is not installed"
    return None


def main() -> int:
    problem = _docker_available()
    if problem is not None:
        print(f"compose smoke NOT RUN: {problem}", file=sys.stderr)
        return 2
    smoke = Smoke(timeout=float(os.environ.get("SMOKE_TIMEOUT", "600")))
    aborted = None
    try:
        smoke.copy_checkout()
        smoke.first_start()
        user = smoke.api_flow()
        user.update(smoke.mail_flow(user))
        smoke.config_check()
        user.update(smoke.rotate_jwt(user))
        smoke.rotate_database_password(user)
        smoke.rotate_redis_password(user)
        smoke.restart_keeps_data(user)
        smoke.stale_volume()
        smoke.scan(user)
    except Aborted as exc:
        aborted = str(exc)
        smoke.failures.append(f"aborted: {aborted}")
        print(f"          ABORTED {aborted}", flush=True)
        try:
            smoke.capture_stack("aborted")
            needles = _variants(smoke.secret_values)
            leaks = sorted({w for w, t in smoke.captured for n in needles if n in t})
            smoke.check(
                not leaks, "no secret value in what was captured before the abort", "\n".join(leaks)
            )
        except Aborted:
            pass
    finally:
        smoke.teardown()
    elapsed = time.monotonic() - smoke.started
    if smoke.failures:
        failed = len(smoke.failures)
        print(f"\ncompose smoke FAILED: {failed} of {smoke.checks} checks, {elapsed:.0f} s")
        for failure in smoke.failures:
            print(f"  - {failure.splitlines()[0]}")
        return 1
    print(f"\ncompose smoke PASSED: {smoke.checks} checks in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
