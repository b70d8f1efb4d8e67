"""The mailer: requests enqueue, one background task sends.

`enqueue()` never waits for a mail server and never raises: a request that mails (a password
reset, a verification) answers in the same time whether the server is fast, slow or down, and
whether a mail was sent at all (so timing reveals nothing about which accounts exist). The worker
task, started and stopped by the app's lifespan, sends one mail at a time with a bounded number of
attempts and exponential backoff with jitter. A mail that cannot be sent is logged (its kind and
random id, the failure reason and the exception type: never the address, the body or the token)
and counted; nothing is raised to anyone.

On shutdown the worker gets `drain_seconds` to send what is queued; what is left is counted and
logged as dropped. Mails are not persisted: a crash loses the queue, and the user asks again (the
account endpoints are idempotent from the user's point of view).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Protocol

from app.mail.messages import Mail
from app.mail.transports import DeliveryFailed, Transport

logger = logging.getLogger("app.mail")

QUEUE_SIZE = 1000
DRAIN_SECONDS = 10.0
BACKOFF_SECONDS = 1.0


class MailObserver(Protocol):
    """Told the outcome of every mail (the app's metrics). Must be quick and must not raise."""

    def mail_sent(self, kind: str, transport: str) -> None: ...

    def mail_failed(self, kind: str, reason: str) -> None: ...


class Mailer:
    def __init__(
        self,
        transport: Transport,
        sender: str,
        observer: MailObserver | None = None,
        *,
        attempts: int = 3,
        backoff_seconds: float = BACKOFF_SECONDS,
        queue_size: int = QUEUE_SIZE,
        drain_seconds: float = DRAIN_SECONDS,
    ) -> None:
        self.transport = transport
        self.sender = sender
        self.observer = observer
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.drain_seconds = drain_seconds
        self._queue: asyncio.Queue[Mail] = asyncio.Queue(maxsize=queue_size)
        self._worker: asyncio.Task[None] | None = None
        self._closed = False

    def enqueue(self, mail: Mail) -> None:
        """Queue `mail` for sending and return at once (never raises, never blocks)."""
        if self._closed:
            self._failed(mail, "shutdown", "the mailer is closed")
            return
        try:
            self._queue.put_nowait(mail)
        except asyncio.QueueFull:
            self._failed(mail, "queue_full", f"{self._queue.maxsize} mails already waiting")

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="mailer")

    async def flush(self) -> None:
        """Wait until every mail queued so far was sent or given up (tests, shutdown)."""
        await self._queue.join()

    async def aclose(self) -> None:
        """Refuse new mails, give the queue `drain_seconds`, then stop; count what is left."""
        self._closed = True
        worker, self._worker = self._worker, None
        if worker is None:
            self._drop_queued()
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.drain_seconds):
                await self.flush()
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
        self._drop_queued()

    def _drop_queued(self) -> None:
        dropped = 0
        while not self._queue.empty():
            mail = self._queue.get_nowait()
            self._queue.task_done()
            self._count_failure(mail, "shutdown")
            dropped += 1
        if dropped:
            logger.warning("mailer stopped with %d unsent mail(s): dropped", dropped)

    async def _run(self) -> None:
        while True:
            mail = await self._queue.get()
            try:
                await self._send(mail)
            except asyncio.CancelledError:  # the drain's time is up
                self._failed(mail, "shutdown", "cancelled while sending")
                raise
            except Exception as exc:  # a bug must not kill the worker (and every later mail)
                self._failed(mail, "error", type(exc).__name__)
            finally:
                self._queue.task_done()

    async def _send(self, mail: Mail) -> None:
        message = mail.to_message(self.sender)
        for attempt in range(1, self.attempts + 1):
            try:
                await self.transport.deliver(message, mail.id)
            except DeliveryFailed as failure:
                if not failure.retry or attempt == self.attempts:
                    self._failed(mail, failure.reason, f"{failure} after {attempt} attempt(s)")
                    return
                logger.info(
                    "mail %s (%s) attempt %d failed (%s), retrying",
                    mail.id,
                    mail.kind,
                    attempt,
                    failure,
                )
                await asyncio.sleep(self._backoff(attempt))
            else:
                logger.info("mail %s (%s) sent via %s", mail.id, mail.kind, self.transport.name)
                if self.observer is not None:
                    self.observer.mail_sent(mail.kind, self.transport.name)
                return

    def _backoff(self, attempt: int) -> float:
        """1x, 2x, 4x ... the base, each with up to 50% jitter (replicas do not retry in step)."""
        base: float = self.backoff_seconds * 2 ** (attempt - 1)
        return base * random.uniform(1.0, 1.5)  # noqa: S311 - jitter, not a secret

    def _failed(self, mail: Mail, reason: str, detail: str) -> None:
        logger.warning("mail %s (%s) not sent: %s (%s)", mail.id, mail.kind, reason, detail)
        self._count_failure(mail, reason)

    def _count_failure(self, mail: Mail, reason: str) -> None:
        if self.observer is not None:
            self.observer.mail_failed(mail.kind, reason)
