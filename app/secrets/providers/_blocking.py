"""Run a vendor SDK's blocking calls off the event loop.

Each cloud provider gets its own small thread pool instead of the loop's default executor: that
one has `cpu + 4` threads (6 on a 2-core pod), shared with every other `to_thread` user, so ten
secrets behind a 200 ms API would resolve in two waves and could starve unrelated work.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

#: Enough for every secret setting to be fetched at once, with room for a writer.
MAX_THREADS = 16


class BlockingRunner:
    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=MAX_THREADS, thread_name_prefix=name)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        # Do not wait: a call abandoned by a fetch timeout may still be stuck on the network.
        self._executor.shutdown(wait=False, cancel_futures=True)
