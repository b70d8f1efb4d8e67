"""Who a token's `sub` is right now (id, email, active?), without a database trip per request.

Every authenticated request must refuse a user who was disabled or deleted a moment ago, so the
answer has to be fresh. Reading the row each time costs a pooled checkout and several round trips;
instead each replica keeps a bounded LRU of the fields auth needs, and PostgreSQL tells it when
they change: migration 0002 adds a trigger that runs `pg_notify('users_changed', OLD.id::text)`
after every UPDATE or DELETE of a user (and `'*'` after a TRUNCATE), and the replica holds ONE
dedicated connection that LISTENs on that channel.

The cache is trusted only while that listener is demonstrably alive (`app.mirror.LiveMirror`,
the same rule as the revocation mirror), with three additions of its own:
- an entry is stored only if the LISTEN was confirmed before its read STARTED, the listener is
  still the same one when the read ends, and no notification arrived while the read was in flight
  (so a read that raced an UPDATE can never be stored after the app received its NOTIFY);
- an entry is served only while the listener is live AND nothing is unread on its socket (a
  notification or a disconnect that reached this host but that the event loop has not processed
  yet sends the request to the database), and while it is younger than `MAX_AGE_SECONDS` (a
  backstop, not the mechanism);
- when the listener is lost, every entry is dropped: a NOTIFY sent while nobody listened is
  lost, so nothing cached before the loss is ever served again.

Reads use the app's one engine (the lifespan's pool, so `/metrics` sees every connection) in
AUTOCOMMIT mode: no BEGIN/ROLLBACK around the one SELECT. The LISTEN connection is a dedicated
connection opened exactly like a pooled one (same credentials, TLS, timeouts).
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import bindparam
from sqlalchemy import select as sql_select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.mirror import PING_INTERVAL_SECONDS, STALE_AFTER_SECONDS, LiveMirror
from app.models import User

#: The channel the trigger of migration 0002 notifies (payload: a user id, or `*` for all).
CHANNEL = "users_changed"
CACHE_SIZE = 10_000
MAX_AGE_SECONDS = 30.0
#: Anything to read (data, EOF, error) on the LISTEN socket.
_UNREAD = (
    select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP
    | getattr(select, "POLLRDHUP", 0)
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class UserStatus:
    id: uuid.UUID
    email: str
    is_active: bool
    role: str
    email_verified: bool
    mfa_enabled: bool = False


@dataclass(frozen=True, slots=True)
class _Entry:
    status: UserStatus
    read_at: float  # monotonic time the read STARTED
    generation: int  # the listener session it was read under


#: Opens the dedicated LISTEN connection (`app.db.connect_dedicated` bound to the settings).
Connect = Callable[[], Awaitable[asyncpg.Connection]]
#: Seconds after which the LISTEN connection is renewed, like pooled ones (leased credentials).
RecycleSeconds = Callable[[], int]


class UserStatusCache(LiveMirror):
    """User status by id: a NOTIFY-invalidated LRU in front of a one-round-trip read."""

    feed = "users change channel"
    fallback = "reading the database per request"

    def __init__(
        self,
        engine: AsyncEngine,
        connect: Connect,
        recycle_seconds: RecycleSeconds,
        *,
        size: int = CACHE_SIZE,
        max_age: float = MAX_AGE_SECONDS,
    ) -> None:
        super().__init__()
        self.engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._connect = connect
        self._recycle_seconds = recycle_seconds
        self.size = size
        self.max_age = max_age
        # Built once: per-call statement construction and cache-key generation would cost more
        # than the round trip itself.
        self._query = sql_select(
            User.id, User.email, User.is_active, User.role, User.email_verified, User.mfa_enabled
        ).where(User.id == bindparam("user_id"))
        self._items: OrderedDict[str, _Entry] = OrderedDict()
        self._epoch = 0  # +1 per notification received
        # Reads in flight by user, with the (generation, epoch) they started under.
        self._flights: dict[str, tuple[asyncio.Future[UserStatus | None], int, int]] = {}
        self._connection: asyncpg.Connection | None = None
        self._unread: select.poll | None = None  # polls the LISTEN socket, timeout 0

    @property
    def listener_pid(self) -> int | None:
        """Server process id of the LISTEN connection (operators and tests can find it)."""
        connection = self._connection
        return connection.get_server_pid() if connection is not None and self._live else None

    def __len__(self) -> int:
        return len(self._items)

    # ---- reading ------------------------------------------------------------------------

    async def lookup(self, user_id: str) -> UserStatus | None:
        """The user's current status, or None if no such user (or `user_id` is no UUID).

        Raises the database's errors (mapped to 503 by the app) when it must read and cannot.
        """
        entry = self._items.get(user_id)
        if entry is not None:
            if entry.generation == self._generation and self._fresh(entry):
                self._items.move_to_end(user_id)
                return entry.status
            self._items.pop(user_id, None)
        try:
            uid = uuid.UUID(user_id)
        except ValueError:
            return None
        cacheable = self.is_live
        generation, epoch, started = self._generation, self._epoch, time.monotonic()
        key = str(uid)  # the canonical spelling, as the trigger's payload has it
        flight = self._flights.get(key)
        if cacheable and flight is not None and flight[1:] == (generation, epoch):
            # A read of this user started while nothing has changed since (no notification,
            # same listener session): its answer is as fresh as a new read would be. Under a
            # burst of one user's requests with a cold cache this is one read, not hundreds.
            try:
                return await asyncio.shield(flight[0])
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # this request was cancelled; else the leader was: read ourselves
        future: asyncio.Future[UserStatus | None] = asyncio.get_running_loop().create_future()
        if cacheable:
            self._flights[key] = (future, generation, epoch)
        try:
            status = await self._read(uid)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without joiners
            raise
        finally:
            if self._flights.get(key, (None,))[0] is future:
                del self._flights[key]
        future.set_result(status)
        if (
            status is not None and cacheable and self._live
            and generation == self._generation and epoch == self._epoch
        ):  # fmt: skip
            self._items[key] = _Entry(status, started, generation)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return status

    def _fresh(self, entry: _Entry) -> bool:
        connection, unread = self._connection, self._unread
        return (
            self.is_live
            and time.monotonic() - entry.read_at < self.max_age
            and connection is not None and not connection.is_closed()
            and unread is not None and not unread.poll(0)
        )  # fmt: skip

    async def read(self, user_id: str) -> UserStatus | None:
        """Like `lookup` but always from the database, never cached: login-like decisions
        (refresh) must refuse a user disabled a moment ago even if the NOTIFY is in flight."""
        try:
            uid = uuid.UUID(user_id)
        except ValueError:
            return None
        return await self._read(uid)

    async def _read(self, uid: uuid.UUID) -> UserStatus | None:
        async with self.engine.connect() as connection:
            row = (await connection.execute(self._query, {"user_id": uid})).first()
        return UserStatus(*row) if row is not None else None

    # ---- invalidation -------------------------------------------------------------------

    def forget(self, user_id: uuid.UUID | str) -> None:
        """This replica just changed the user's row: drop it now, as its NOTIFY would.

        The NOTIFY reaches the listener only some milliseconds after the writer's COMMIT
        returns, so without this the writer's next request could still see the old row.
        """
        self._invalidate(str(user_id))

    def _on_notify(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self._invalidate(payload.strip())

    def _invalidate(self, key: str) -> None:
        self._epoch += 1  # and no read in flight is cached
        if key == "*" or not key:
            self._items.clear()
        else:
            self._items.pop(key, None)

    def _forget(self) -> None:
        self._unread = None
        self._items.clear()

    # ---- the listener -------------------------------------------------------------------

    async def _session(self) -> bool:
        connection = await self._connect()
        self._connection = connection
        try:
            return await self._follow(connection)
        finally:
            self._lost()
            self._connection = None
            await _close(connection)

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
        self._went_live()
        opened = time.monotonic()
        recycle = self._recycle_seconds()
        while not self.stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closed.wait(), PING_INTERVAL_SECONDS)
            if closed.is_set() or connection.is_closed():
                raise ConnectionError("listener connection closed")
            await connection.fetchval("SELECT 1", timeout=STALE_AFTER_SECONDS)
            self._heartbeat()
            if recycle > 0 and time.monotonic() - opened >= recycle:
                return True
        return False


def _socket_poller(connection: asyncpg.Connection) -> select.poll | None:
    # asyncpg exposes no public handle on its socket; if this private one is ever missing, the
    # cache is simply never trusted (every lookup reads the database).
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
