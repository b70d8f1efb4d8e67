"""`make revision m=...` in a copy of the checkout: creates the database named in DATABASE_URL,
migrates it to head, autogenerates a revision from app/models.py, and the new file passes the
ruff checks of `make lint` as generated."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.deploy.tools import ROOT, run
from tests.support.server import base_env
from tests.support.services import TEST_DATABASE_URL, asyncpg_dsn, drop_database

WIDGET_MODEL = """

from sqlalchemy import ForeignKey, String, Uuid  # noqa: E402 - appended to the module


class Widget(Base):
    __tablename__ = "widgets"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
"""


def _copy_checkout(target: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source = ROOT / name.decode()
        if source.is_file():
            (target / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name.decode())


async def _revision(url: str) -> str | None:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        value: str | None = await connection.fetchval("SELECT version_num FROM alembic_version")
        return value
    finally:
        await connection.close()


@pytest.mark.skipif(shutil.which("createdb") is None, reason="needs PostgreSQL's createdb")
def test_make_revision_autogenerates_a_lint_clean_revision(tmp_path: Path) -> None:
    project = tmp_path / "project"
    _copy_checkout(project)
    models = project / "app" / "models.py"
    models.write_text(models.read_text() + WIDGET_MODEL)
    before = set((project / "migrations" / "versions").glob("*.py"))
    name = f"test_revision_{uuid.uuid4().hex[:10]}"
    url = (
        make_url(TEST_DATABASE_URL)
        .set(drivername="postgresql+asyncpg", database=name)
        .render_as_string(hide_password=False)
    )
    venv = Path(sys.executable).parent.parent
    try:
        result = subprocess.run(
            ["make", "revision", "m=add widgets", f"VENV={venv}", f"DATABASE_URL={url}"],
            cwd=project,
            env=base_env(APP_ENV="development"),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"created database {name}" in result.stdout
        # Migrated to head before autogenerating, so only the new table is in the revision.
        assert asyncio.run(_revision(url)) is not None
    finally:
        asyncio.run(drop_database(url))

    created = set((project / "migrations" / "versions").glob("*.py")) - before
    assert len(created) == 1, created
    revision = created.pop()
    text = revision.read_text()
    assert "add widgets" in text
    assert 'op.create_table(\n        "widgets",' in text
    assert "ix_widgets_owner_id" in text
    assert "users" not in text.split('"widgets"', 1)[0], "only the new table is generated"
    ruff = str(venv / "bin" / "ruff")
    check = run([ruff, "check", str(revision)], cwd=project)
    assert check.returncode == 0, check.stdout
    formatted = run([ruff, "format", "--check", str(revision)], cwd=project)
    assert formatted.returncode == 0, formatted.stdout


def test_make_revision_without_a_message_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        ["make", "-s", "revision", f"VENV={Path(sys.executable).parent.parent}"],
        cwd=ROOT,
        env=base_env(DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:1/none"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert 'usage: make revision m="' in result.stderr
