"""Who a token's `sub` is right now (id, email, active?), without a database trip per request.

Every authenticated request must refuse a user who was disabled or deleted a moment ago, so the
answer has to be fresh. Reading the row each time costs a pooled checkout and several round trips;
instead each replica keeps a bounded LRU of the fields auth needs, and PostgreSQL tells it when
they change: migration 0002 adds a trigger that runs `pg_notify('users_changed', OLD.id::text)`
after every UPDATE or DELETE of a user (and `'*'` after a TRUNCATE), and the replica holds ONE
dedicated connection that LISTENs on that channel.

The cache is trusted only while that listener is demonstrably alive, the same rule as the
revocation mirror (app/security/revocation.py):
- an entry is stored only if the LISTEN was confirmed before its read STARTED, the listener is
  still the same one when the read ends, and no notification arrived while the read was in flight
  (so a read that raced an UPDATE can never be stored after the app received its NOTIFY);
- an entry is served only while the listener is live (connected, answering a ping every second,
  and NOTHING UNREAD on its socket: a notification or a disconnect that reached this host but
  that the event loop has not processed yet sends the request to the database) and it is younger
  than `MAX_AGE_SECONDS` (a backstop, not the mechanism);
- when the listener is lost, every entry is dropped and each request reads the database until a
  new LISTEN is confirmed. A NOTIFY sent while nobody listened is lost, so nothing cached before
  the loss is ever served again.

The database read is one round trip: an AUTOCOMMIT pool (no BEGIN/ROLLBACK, and its
pre-ping would be a round trip of its own) where a connection found dead by the query itself is
discarded and the read retried once on a fresh one, which is what pre-ping would have done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import bindparam
from sqlalchemy import select as sql_select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db import connect_dedicated, create_engine, pool_recycle_seconds
from app.models import User
from app.secrets import SecretStore

logger = logging.getLogger("app.security.users")

#: The channel the trigger of migration 0002 notifies (payload: a user id, or `*` for all).
CHANNEL = "users_changed"
CACHE_SIZE = 10_000
MAX_AGE_SECONDS = 30.0
PING_INTERVAL_SECONDS = 1.0
STALE_AFTER_SECONDS = 3.0
_RETRY_MAX_SECONDS = 2.0
#: Anything to read (data, EOF, error) on the LISTEN socket.
_UNREAD = (
    select.POLLIN
    | select.POLLPRI
    | select.POLLERR
    | select.POLLHUP
    | getattr(select, "POLLRDHUP", 0)
)


@dataclass(frozen=True, slots=True)
class UserStatus:
    id: uuid.UUID
    email: str
    is_active: bool


@dataclass(frozen=True, slots=True)
class _Entry:
    status: UserStatus
    read_at: float  # monotonic time the read STARTED
    generation: int  # the listener session it was read under


class UserDirectory:
    """User status by id: a NOTIFY-invalidated LRU in front of a one-round-trip read."""

    def __init__(
        self,
        settings: Settings,
        store: SecretStore,
        *,
        size: int = CACHE_SIZE,
        max_age: float = MAX_AGE_SECONDS,
    ) -> None:
        self.settings = settings
        self.store = store
        self.size = size
        self.max_age = max_age
        # Its own pool, AUTOCOMMIT from the first statement, so nothing but the SELECT crosses
        # the wire. Same limits and timeouts as the main pool (DB_POOL_SIZE, DB_MAX_OVERFLOW,
        # DB_POOL_TIMEOUT_SECONDS); connections open on demand, and while the listener is live
        # only cache misses (and refreshes, see `read`) use them.
        self.engine: AsyncEngine = create_engine(
            settings, store, isolation_level="AUTOCOMMIT", pool_pre_ping=False
        )
        # Built once: per-call statement construction and cache-key generation would cost more
        # than the round trip itself.
        self._query = sql_select(User.id, User.email, User.is_active).where(
            User.id == bindparam("user_id")
        )
        self._items: OrderedDict[str, _Entry] = OrderedDict()
        self._generation = 0  # +1 when a LISTEN is confirmed and when it is lost
        self._epoch = 0  # +1 per notification received
        self._listening = False
        self._last_ok = float("-inf")
        self._connection: asyncpg.Connection | None = None
        self._unread: select.poll | None = None  # polls the LISTEN socket, timeout 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="users-listener")

    async def aclose(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=STALE_AFTER_SECONDS)
            self._task = None
        self._lost()
        await self.engine.dispose()

    @property
    def listener_is_live(self) -> bool:
        """True while cached entries may be served (and new reads may be cached)."""
        return self._listening and time.monotonic() - self._last_ok < STALE_AFTER_SECONDS

    @property
    def listener_pid(self) -> int | None:
        """Server process id of the LISTEN connection (operators and tests can find it)."""
        connection = self._connection
        return connection.get_server_pid() if connection is not None and self._listening else None

    @property
    def generation(self) -> int:
        return self._generation

    def __len__(self) -> int:
        return len(self._items)

    # ---- reading ------------------------------------------------------------------------

    async def lookup(self, user_id: str) -> UserStatus | None:
        """The user's current status, or None if no such user (or `user_id` is no UUID).

        Raises the database's errors (mapped to 503 by the app) when it must read and cannot.
        """
        entry = self._items.get(user_id)
        if entry is not None:
            now = time.monotonic()
            connection, unread = self._connection, self._unread
            if (
                entry.generation == self._generation
                and self._listening
                and now - self._last_ok < STALE_AFTER_SECONDS
                and now - entry.read_at < self.max_age
                and connection is not None
                and not connection.is_closed()
                and unread is not None
                and not unread.poll(0)
            ):
                self._items.move_to_end(user_id)
                return entry.status
            self._items.pop(user_id, None)
        try:
            uid = uuid.UUID(user_id)
        except ValueError:
            return None
        cacheable = self.listener_is_live
        generation, epoch, started = self._generation, self._epoch, time.monotonic()
        status = await self._read(uid)
        if (
            status is not None
            and cacheable
            and self._listening
            and generation == self._generation
            and epoch == self._epoch
        ):
            key = str(uid)  # the canonical spelling, as the trigger's payload has it
            self._items[key] = _Entry(status, started, generation)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return status

    async def read(self, user_id: str) -> UserStatus | None:
        """Like `lookup` but always from the database, never cached: login-like decisions
        (refresh) must refuse a user disabled a moment ago even if the NOTIFY is in flight."""
        try:
            uid = uuid.UUID(user_id)
        except ValueError:
            return None
        return await self._read(uid)

    async def _read(self, uid: uuid.UUID) -> UserStatus | None:
        for attempt in (1, 2):
            try:
                async with self.engine.connect() as connection:
                    row = (await connection.execute(self._query, {"user_id": uid})).first()
                break
            except DBAPIError as exc:
                # A pooled connection the server dropped (restart, failover, idle timeout):
                # SQLAlchemy has invalidated it; one retry opens a fresh one.
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        return UserStatus(row[0], row[1], row[2]) if row is not None else None

    # ---- invalidation -------------------------------------------------------------------

    def _on_notify(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self._epoch += 1
        key = payload.strip()
        if key == "*" or not key:
            self._items.clear()
        else:
            self._items.pop(key, None)

    def _lost(self) -> None:
        if self._listening:
            self._generation += 1
        self._listening = False
        self._unread = None
        self._items.clear()

    # ---- the listener -------------------------------------------------------------------

    async def _listen(self) -> None:
        delay = 0.1
        while not self._stopping:
            recycled = False
            try:
                connection = await connect_dedicated(self.settings, self.store)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("users listener cannot connect (%s)", type(exc).__name__)
            else:
                self._connection = connection
                generation = self._generation  # moves on when the LISTEN is confirmed
                try:
                    recycled = await self._follow(connection)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # `_listening` may already be False here: the termination callback runs first.
                    if self._generation != generation:
                        logger.warning(
                            "users change channel lost (%s); reading the database per request",
                            type(exc).__name__,
                        )
                finally:
                    self._lost()
                    self._connection = None
                    await _close(connection)
                if self._generation != generation:
                    delay = 0.1  # a listener that was live: the backoff starts over
            if self._stopping:
                return
            if not recycled:
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_SECONDS)

    async def _follow(self, connection: asyncpg.Connection) -> bool:
        """LISTEN, then ping until the connection fails (raises) or is due for recycling
        (returns True): like pooled connections, it must not outlive leased credentials."""
        closed = asyncio.Event()

        def on_termination(_: Any) -> None:
            self._lost()  # at once: no request may use the cache after this point
            closed.set()

        connection.add_termination_listener(on_termination)
        await connection.add_listener(CHANNEL, self._on_notify)
        self._unread = _socket_poller(connection)
        if self._unread is None:
            raise RuntimeError("cannot watch the LISTEN socket")  # never trust what we can't see
        self._items.clear()
        self._generation += 1
        self._last_ok = time.monotonic()
        self._listening = True
        opened = time.monotonic()
        recycle = pool_recycle_seconds(self.settings, self.store)
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closed.wait(), PING_INTERVAL_SECONDS)
            if closed.is_set() or connection.is_closed():
                raise ConnectionError("listener connection closed")
            await connection.fetchval("SELECT 1", timeout=STALE_AFTER_SECONDS)
            self._last_ok = time.monotonic()
            if recycle > 0 and time.monotonic() - opened >= recycle:
                return True
        return False


def _socket_poller(connection: asyncpg.Connection) -> select.poll | None:
    transport = getattr(connection, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return None
    poller = select.poll()
    poller.register(sock.fileno(), _UNREAD)
    return poller


async def _close(connection: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(connection.close(), timeout=2)
    except asyncio.CancelledError:
        connection.terminate()
        raise
    except Exception:
        connection.terminate()  # already broken: just drop the socket
