"""A Kubernetes secret volume: `name -> ..data/name`, `..data -> ..<timestamp>`, and an update
is ONE atomic rename of `..data` (then the old timestamped dir is deleted). The running store
must serve the new set within SECRETS_REFRESH_SECONDS + 1 s, and a reader must never see a mix
of the old and the new set."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import time
from pathlib import Path

import pytest

from app.config import SECRETS, Settings
from app.secrets import SecretStore
from tests.secrets.helpers import clear_secret_env

REFRESH_SECONDS = 2
FILES = ("jwt_keys", "redis_password", "database_password")


class SecretVolume:
    """Writes a mount the way kubelet's atomic writer does."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir()
        self.current: Path | None = None
        self.generation = 0

    def publish(self) -> int:
        self.generation += 1
        stamp = self.root / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.time_ns()}"
        stamp.mkdir()
        for name in FILES:
            # The generation prefix lets the reader tell which set a value belongs to.
            (stamp / name).write_text(f"gen{self.generation}-{secrets.token_urlsafe(40)}\n")
        staging = self.root / "..data_tmp"
        staging.symlink_to(stamp.name)
        os.replace(staging, self.root / "..data")  # the atomic swap
        for name in FILES:
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")
        if self.current is not None:
            shutil.rmtree(self.current)
        self.current = stamp
        return self.generation


def generation_of(value: str) -> int:
    return int(value.split("-", 1)[0].removeprefix("gen"))


async def test_swap_is_served_whole_and_in_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_secret_env(monkeypatch)
    volume = SecretVolume(tmp_path / "mount")
    volume.publish()
    settings = Settings(
        _env_file=None,
        app_env="test",
        secrets_dir=str(volume.root),
        secrets_refresh_seconds=REFRESH_SECONDS,
    )
    store = await SecretStore.open(settings, SECRETS)
    assert {store.entry(name.upper()).source for name in FILES} == {"dir"}  # type: ignore[union-attr]
    store.start()

    observed: set[int] = set()
    mixes: list[dict[str, int]] = []
    stop = asyncio.Event()

    async def reader() -> None:
        while not stop.is_set():
            snapshot = store.snapshot()
            generations = {
                name: generation_of(snapshot[name.upper()].value.get_secret_value())
                for name in FILES
            }
            if len(set(generations.values())) != 1:
                mixes.append(generations)
            observed.update(generations.values())
            await asyncio.sleep(0.001)

    reading = asyncio.create_task(reader())
    try:
        for _ in range(3):
            generation = await asyncio.to_thread(volume.publish)
            started = time.monotonic()
            while generation not in observed:
                assert time.monotonic() - started < REFRESH_SECONDS + 1, (
                    f"generation {generation} not served within {REFRESH_SECONDS + 1}s"
                )
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await reading
        await store.aclose()
    assert mixes == []
    assert observed == {1, 2, 3, 4}
