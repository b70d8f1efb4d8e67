"""docs/extending.md, followed to the letter on a copy of the repository: a new table owned by
users (model, `make revision`, router, tests in the project's style) and a new secret (one
declaration plus its docs line), then the relevant tests and the linters run in that copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import ROOT
from tests.support.services import create_database, drop_database

pytestmark = pytest.mark.slow

MODEL = """

class Note(Base):
    __tablename__ = "notes"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    text: Mapped[str] = mapped_column(String(1000))
"""

ROUTER = '''"""`/api/v1/notes`: a throwaway resource added the way docs/extending.md says."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field
from sqlalchemy import select

from app.api.deps import CurrentUser, SessionDep
from app.api.routing import body_router
from app.models import Note

router = body_router("/api/v1/notes", ["notes"])


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=1000)


class NoteOut(BaseModel):
    id: uuid.UUID
    text: str


@router.post("", status_code=201, response_model=NoteOut)
async def create(body: NoteIn, user: CurrentUser, session: SessionDep) -> NoteOut:
    note = Note(owner_id=user.id, text=body.text)
    session.add(note)
    await session.commit()
    return NoteOut(id=note.id, text=note.text)


@router.get("", response_model=list[NoteOut])
async def mine(user: CurrentUser, session: SessionDep) -> list[NoteOut]:
    rows = await session.scalars(select(Note).where(Note.owner_id == user.id))
    return [NoteOut(id=note.id, text=note.text) for note in rows]
'''

ROUTE_TEST = '''"""`/api/v1/notes`: created by its owner and listed to its owner only."""

from __future__ import annotations

import httpx

from tests.api.auth_helpers import bearer, signed_in


async def test_notes_belong_to_their_owner(client: httpx.AsyncClient) -> None:
    _, alice = await signed_in(client)
    _, bob = await signed_in(client)
    created = await client.post(
        "/api/v1/notes", json={"text": "hello"}, headers=bearer(alice["access_token"])
    )
    assert created.status_code == 201, created.text
    mine = await client.get("/api/v1/notes", headers=bearer(alice["access_token"]))
    assert [note["text"] for note in mine.json()] == ["hello"]
    theirs = await client.get("/api/v1/notes", headers=bearer(bob["access_token"]))
    assert theirs.json() == []
    assert (await client.post("/api/v1/notes", json={"text": "x"})).status_code == 401
    invalid = await client.post(
        "/api/v1/notes", json={"text": ""}, headers=bearer(alice["access_token"])
    )
    assert invalid.status_code == 422
'''

SECRET = """
NOTES_SIGNING_KEY = SecretSpec[str](
    name="NOTES_SIGNING_KEY",
    description="a throwaway secret declared the documented way",
    parse=text,
    check=not_placeholder,
    generate=new_password,
)
"""


def _copy(target: Path) -> None:
    """The working tree as git sees it (tracked and new files, not ignored ones)."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            destination = target / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
    subprocess.run(["git", "init", "-q"], cwd=target, check=True)  # .gitignore applies


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path}: the docs' anchor {old!r} is gone"
    path.write_text(text.replace(old, new, 1))


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.timeout(900)  # ruff, mypy and three pytest runs in a copy, on a busy machine
async def test_a_new_table_and_a_new_secret_the_documented_way(tmp_path: Path) -> None:
    project = tmp_path / "project"
    _copy(project)
    if (ROOT / ".mypy_cache").is_dir():  # mypy re-checks what changed; a cold run takes minutes
        shutil.copytree(ROOT / ".mypy_cache", project / ".mypy_cache")
    venv_bin = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "NOTES_", "APP_"))}
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(project)  # the copy's `app`, not the installed checkout's

    # 1. The model, 2. `make revision`, 3. the router, 4. wired in, 5. its tests.
    models = project / "app" / "models.py"
    text = models.read_text()
    if "ForeignKey" not in text.split("\nclass ", 1)[0]:  # the imports the model needs
        _edit(models, "\nfrom sqlalchemy", "\nfrom sqlalchemy import ForeignKey\nfrom sqlalchemy")
    models.write_text(models.read_text() + MODEL)
    database = await create_database()
    try:
        env["DATABASE_URL"] = database
        _run(
            ["make", "revision", "m=add notes", f"VENV={venv_bin.parent}", "PYTHON=python3"],
            project,
            env,
        )
    finally:
        await drop_database(database)
    revisions = list((project / "migrations" / "versions").glob("*add_notes*.py"))
    assert len(revisions) == 1, "make revision wrote one revision"
    generated = revisions[0].read_text()
    assert '"notes"' in generated
    assert "ondelete='CASCADE'" in generated or 'ondelete="CASCADE"' in generated
    (project / "app" / "api" / "routes" / "notes.py").write_text(ROUTER)
    main = project / "app" / "main.py"
    _edit(
        main,
        "\nfrom app.api.routes import",
        "\nfrom app.api.routes import notes\nfrom app.api.routes import",
    )
    _edit(main, "    add_routes(app, users.router)\n", "    add_routes(app, users.router)\n"
          "    add_routes(app, notes.router)\n")  # fmt: skip
    (project / "tests" / "api" / "test_notes.py").write_text(ROUTE_TEST)

    # The secret: one declaration, plus its docs line.
    config = project / "app" / "config.py"
    _edit(config, "\n#: Every secret", SECRET + "\n#: Every secret")
    registry = config.read_text().split("SECRETS = SecretRegistry(", 1)[1].split(")", 1)[0]
    _edit(config, registry, registry + "    NOTES_SIGNING_KEY,\n")
    example = project / ".env.example"
    example.write_text(example.read_text() + "\n# A throwaway secret.\n# NOTES_SIGNING_KEY=\n")

    # `make format`, as docs/extending.md says after editing.
    _run([str(venv_bin / "ruff"), "check", "--fix", "--quiet", "."], project, env)
    _run([str(venv_bin / "ruff"), "format", "."], project, env)
    _run([str(venv_bin / "ruff"), "check", "."], project, env)
    _run([str(venv_bin / "ruff"), "format", "--check", "."], project, env)
    _run([str(venv_bin / "mypy"), "app"], project, env)
    _run([str(venv_bin / "lint-imports")], project, env)
    pytest_ = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    # The new secret is covered by the registry-parametrised tests, without a line of test code.
    precedence = _run([*pytest_, "tests/secrets/test_precedence.py", "-k", "NOTES_SIGNING_KEY"],
                      project, env)  # fmt: skip
    assert "8 passed" in precedence.stdout  # every X / X_FILE / SECRETS_DIR combination
    covered = _run(
        [
            *pytest_,
            "tests/api/test_notes.py",
            "tests/cli/test_secrets_init.py",
            "tests/deploy/test_template_files.py",
            "tests/test_canary.py",
        ],
        project,
        env,
    )
    assert " failed" not in covered.stdout
