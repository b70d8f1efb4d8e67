"""LiveMirror: a local copy of shared state, trusted only while its change feed is live.

Two parts of the app keep such a copy to avoid a network round trip per request: the revocation
list (a Redis sorted set, fed by pub/sub) and the user status cache (rows of `users`, fed by
PostgreSQL LISTEN/NOTIFY). Both follow the same rule, implemented once here:
- the copy is used only while its feed is demonstrably alive: connected, and answering a ping
  within `STALE_AFTER_SECONDS` (`is_live`);
- when the feed is lost, `_forget()` runs at once and every reader falls back to the
  authoritative store until a new session is confirmed; nothing heard before a loss is trusted
  after it unless the subclass says why it is safe (the revocation list keeps what it knows is
  revoked: revocations only ever add);
- `generation` moves on every confirmed session and every loss, so a reader can tell that a
  value it read belongs to a session that has since ended;
- reconnection backs off exponentially up to `RETRY_MAX_SECONDS`, and starts over after a
  session that was live.
Subclasses implement `_session()`: connect, subscribe, call `_went_live()`, then keep the feed
(calling `_heartbeat()` on each answered ping) until it fails (raise) or must be renewed
(return True to reconnect at once).
"""

from __future__ import annotations

import asyncio
import logging
import time

logger = logging.getLogger("app.mirror")

PING_INTERVAL_SECONDS = 1.0
STALE_AFTER_SECONDS = 3.0
RETRY_FIRST_SECONDS = 0.1
RETRY_MAX_SECONDS = 2.0


class LiveMirror:
    #: For log lines: what the feed is, and what readers do without it.
    feed = "change feed"
    fallback = "reading the source per request"

    def __init__(self) -> None:
        self._live = False
        self._last_ok = float("-inf")
        self._generation = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name=type(self).__name__)

    async def aclose(self) -> None:
        self._stopping = True
        if self._task is not None:
            # A client library may absorb a cancellation inside a read; `_stopping` ends the
            # loop anyway, and the wait is bounded.
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=STALE_AFTER_SECONDS)
            self._task = None
        self._lost()

    # ---- liveness -----------------------------------------------------------------------

    @property
    def is_live(self) -> bool:
        """True while the local copy may answer without asking the source."""
        return self._live and time.monotonic() - self._last_ok < STALE_AFTER_SECONDS

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def stopping(self) -> bool:
        return self._stopping

    def _went_live(self) -> None:
        self._generation += 1
        self._last_ok = time.monotonic()
        self._live = True

    def _heartbeat(self) -> None:
        self._last_ok = time.monotonic()

    def _lost(self) -> None:
        """The feed is gone (idempotent): stop trusting the copy at once."""
        if self._live:
            self._generation += 1
        self._live = False
        self._forget()

    def _forget(self) -> None:
        """Drop whatever must not outlive the feed (subclasses)."""

    async def _session(self) -> bool:
        raise NotImplementedError

    # ---- the loop -----------------------------------------------------------------------

    async def _run(self) -> None:
        delay = RETRY_FIRST_SECONDS
        while not self._stopping:
            generation = self._generation
            renew = False
            try:
                renew = await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._live or self._generation != generation:
                    logger.warning("%s lost (%s); %s", self.feed, type(exc).__name__, self.fallback)
                else:
                    logger.debug("%s cannot connect (%s)", self.feed, type(exc).__name__)
            finally:
                self._lost()
            if self._generation != generation:
                delay = RETRY_FIRST_SECONDS  # a session that was live: the backoff starts over
            if self._stopping:
                return
            if not renew:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
