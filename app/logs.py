"""Process-wide logging setup, done once by the entry points (never at import time).

One handler on the root logger, so everything (our loggers, uvicorn's, libraries') goes through
the same formatter and filters:
- `LOG_FORMAT=json` (default in production and test): one JSON object per line with `ts`,
  `level`, `logger`, `message`, the current `request_id`, and any `extra` fields;
- `LOG_FORMAT=text` (default in development): a human-readable line.
Audit events (logger `app.audit`) are written as their own JSON object in JSON mode.
The secrets core's redaction filter sits on that handler, so every format only ever sees
redacted text. The text format escapes control characters (CR, LF, ESC, ...) in the line itself
and indents continuation lines of tracebacks, so no request path or message can forge a line.

The root handler (`BackgroundStreamHandler`) redacts each record and stamps its request id on the
thread that logged it, then hands it to one writer thread that formats and writes in batches:
the event loop never waits on the log sink, and a burst costs one write per batch. `flush()`
waits for everything handed over so far; `logging.shutdown()` (run at every normal exit, SIGTERM
included) flushes and closes it, so no line is lost on exit.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import queue
import re
import sys
import threading
import time
import weakref
from typing import IO, Any, NamedTuple

import orjson

from app.config import Settings
from app.observability.context import current_request_id
from app.secrets.redaction import (
    _MARK,
    SecretRedactionFilter,
    install_on_root,
    redact,
    redactor,
)

#: LogRecord attributes that are not `extra` fields.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    "audit",
    "request_id",
}

#: Loggers of the server and libraries that must not keep handlers of their own.
_ROUTED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


_second: tuple[int, str] = (-1, "")


def _timestamp(record: logging.LogRecord) -> str:
    return _timestamp_of(record.created, record.msecs)


def _timestamp_of(created: float, msecs: float) -> str:
    """`2026-01-31T12:00:00.123Z`; the part up to the second is formatted once per second."""
    global _second
    seconds = int(created)
    cached = _second
    if cached[0] != seconds:
        cached = _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{cached[1]}.{int(msecs):03d}Z"


#: Records that reach a formatter without passing the filter (a handler built without it) are
#: rewritten here; those that passed carry its mark and cost nothing more.
_REDACTION = SecretRedactionFilter()


def _redacted(record: logging.LogRecord) -> logging.LogRecord:
    if _MARK not in record.__dict__:
        _REDACTION.filter(record)
    return record


def _not_json(value: object) -> str:
    # Any other type is written as its str(), which may spell a credential (a URL object...).
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per record. Values that are not JSON types are written with `str()`
    (a `SecretStr` therefore shows as `**********`), redacted."""

    def format(self, record: logging.LogRecord) -> str:
        attributes = _redacted(record).__dict__
        ts = _timestamp(record)
        document: dict[str, Any] = {"ts": ts, "level": record.levelname, "logger": record.name}
        audit = attributes.get("audit")
        if isinstance(audit, dict):
            document.update(audit)
            document["ts"] = ts  # the line's time, not the event's rounded one
        else:
            document["message"] = record.getMessage()
        request_id = attributes.get("request_id") or current_request_id()
        if request_id is not None and "request_id" not in document:
            document["request_id"] = request_id
        for key in attributes:
            if key not in _RESERVED and key[0] != "_" and key not in document:
                document[key] = attributes[key]
        if record.exc_info:
            document["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:  # the redaction filter replaces exc_info with redacted text
            document["exc_info"] = record.exc_text
        if record.stack_info:
            document["stack_info"] = self.formatStack(record.stack_info)
        return _dumps(document)


def _dumps(document: dict[str, Any]) -> str:
    try:
        return orjson.dumps(document, default=_not_json, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):  # ints past 64 bits, lone surrogates, ...
        return json.dumps(document, default=_not_json)  # ASCII escapes: always writable


#: Everything that could end a line or drive a terminal: C0 and C1 controls, DEL, and the
#: Unicode line/paragraph separators (`str.splitlines` splits on several of these).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_LF = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _ESCAPES.get(char) or (
        f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"
    )


class TextFormatter(logging.Formatter):
    """Human-readable development logs: time, level, logger, message, then `[request id]`.

    The line is escaped (`\\r`, `\\n`, `\\x1b`, ...) and traceback lines are indented, so a
    request path or message cannot start a line of its own."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        return _CONTROL.sub(_escape, super().formatMessage(record))

    def format(self, record: logging.LogRecord) -> str:
        first, _, rest = super().format(_redacted(record)).partition("\n")
        request_id = record.__dict__.get("request_id") or current_request_id()
        if request_id is not None:
            first = f"{first} [{request_id}]"
        if not rest:
            return first
        rest = _CONTROL_BUT_LF.sub(_escape, rest)
        return first + "".join(f"\n  {line}" for line in rest.split("\n"))


def log_format(settings: Settings) -> str:
    if settings.log_format is not None:
        return settings.log_format
    return "text" if settings.app_env == "development" else "json"


#: Most records taken from the queue at once; how long flush() and close() wait for the writer.
_BATCH = 512
_LINGER_SECONDS = 0.005
#: Records waiting past this make the logging thread wait for the writer (back-pressure, as a
#: blocking handler would give) instead of growing memory while the sink is stuck.
_MAX_PENDING = 10_000
#: Bytes per write: writes up to PIPE_BUF are atomic on a pipe, so lines from several processes
#: sharing stdout (uvicorn workers) can interleave but never mix within a line.
_CHUNK = 4096
_WAIT_SECONDS = 5.0
_STOP = object()
_live_handlers: weakref.WeakSet[BackgroundStreamHandler] = weakref.WeakSet()


class _Line(NamedTuple):
    """A record handed over by `emit_fields`, already redacted: what JsonFormatter would
    have read from the LogRecord."""

    created: float
    level: str
    logger: str
    message: str
    request_id: str | None
    fields: dict[str, Any]

    def format(self) -> str:
        document: dict[str, Any] = {
            "ts": _timestamp_of(self.created, (self.created - int(self.created)) * 1000),
            "level": self.level,
            "logger": self.logger,
            "message": self.message,
        }
        if self.request_id is not None:
            document["request_id"] = self.request_id
        for key, value in self.fields.items():
            if key not in document:
                document[key] = value
        return _dumps(document)

    def as_record(self) -> logging.LogRecord:  # for handleError only
        return logging.makeLogRecord({"name": self.logger, "msg": self.message})


def _as_record(item: logging.LogRecord | _Line) -> logging.LogRecord:
    return item if isinstance(item, logging.LogRecord) else item.as_record()


class BackgroundStreamHandler(logging.handlers.QueueHandler):
    """Writes formatted records to `stream` (stderr by default) from a writer thread.

    Its filters (the redaction filter, installed by `configure_logging`) run on the logging
    thread before the record is queued, so nothing unredacted is ever queued or seen by another
    handler; the request id is stamped there too, as the writer cannot see the request's context.
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._records: queue.SimpleQueue[Any] = queue.SimpleQueue()
        super().__init__(self._records)
        self.stream: IO[str] = stream if stream is not None else sys.stderr
        self._writer: threading.Thread | None = None
        self._closed = False
        self._writer_lock = threading.Lock()
        self._io_lock = threading.Lock()  # held while writing, and across fork()
        _live_handlers.add(self)

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # The redaction filter has rewritten the record: message resolved, traceback as text.
        if "request_id" not in record.__dict__:
            request_id = current_request_id()
            if request_id is not None:
                record.request_id = request_id
        return record

    def enqueue(self, record: logging.LogRecord | _Line) -> None:
        if self._writer is None and not self._start():
            self._write([(record, self._format(record))])  # closed: write in place
            return
        if self._records.qsize() >= _MAX_PENDING:
            self.flush()
        self._records.put_nowait(record)

    def emit_fields(
        self, logger: str, level: int, message: str, fields: dict[str, Any], request_id: str | None
    ) -> bool:
        """Write a line of `message` and flat `fields` (str, int, float, None) as the JSON
        formatter would write a LogRecord of them, without building one; False (nothing done)
        unless this handler is as `configure_logging` built it: JSON format, only the redaction
        filter. The access log writes one such line per request: a LogRecord, its filter pass
        and its generic formatting cost about a quarter of a cached authenticated request
        (bench/results.md)."""
        if type(self.formatter) is not JsonFormatter or any(
            type(f) is not SecretRedactionFilter for f in self.filters
        ):
            return False
        if level >= self.level:
            scrub = redactor()
            redacted = {
                key: scrub(value) if isinstance(value, str) else value
                for key, value in fields.items()
            }
            line = _Line(
                time.time(), logging.getLevelName(level), logger, scrub(message), request_id,
                redacted,
            )  # fmt: skip
            self.enqueue(line)
        return True

    def _start(self) -> bool:
        with self._writer_lock:
            if self._closed:
                return False
            if self._writer is None:
                self._writer = threading.Thread(target=self._run, name="log-writer", daemon=True)
                self._writer.start()
            return True

    def _run(self) -> None:
        records = self._records
        while True:
            batch = [records.get()]
            # Let a burst gather: waking per record would hand the GIL back and forth with the
            # event loop on every request and write one line per syscall.
            time.sleep(_LINGER_SECONDS)
            while len(batch) < _BATCH:
                try:
                    batch.append(records.get_nowait())
                except queue.Empty:
                    break
            if self._handle(batch):
                return

    def _handle(self, batch: list[Any]) -> bool:
        """Format and write `batch`, then wake its flush() callers; True if told to stop."""
        lines: list[tuple[logging.LogRecord | _Line, str]] = []
        waiters: list[threading.Event] = []
        stop = False
        for item in batch:
            if item is _STOP:
                stop = True
            elif isinstance(item, threading.Event):
                waiters.append(item)
            else:
                try:
                    lines.append((item, self._format(item)))
                except Exception:
                    self.handleError(_as_record(item))
        if lines:
            self._write(lines)
        for waiter in waiters:
            waiter.set()
        return stop

    def _format(self, item: logging.LogRecord | _Line) -> str:
        return item.format() if isinstance(item, _Line) else self.format(item)

    def _write(self, lines: list[tuple[logging.LogRecord | _Line, str]]) -> None:
        chunk: list[str] = []
        size = 0
        with self._io_lock:
            for record, line in lines:
                length = (len(line) if line.isascii() else len(line.encode())) + 1
                if chunk and size + length > _CHUNK:
                    self._emit_chunk(chunk, record)
                    chunk, size = [], 0
                chunk.append(line)
                size += length
            self._emit_chunk(chunk, lines[-1][0])

    def _emit_chunk(self, chunk: list[str], record: logging.LogRecord | _Line) -> None:
        try:
            self.stream.write("\n".join(chunk) + "\n")
            self.stream.flush()
        except Exception:
            self.handleError(_as_record(record))

    def flush(self) -> None:
        """Wait until every record handed over before this call is written."""
        writer = self._writer
        if writer is None or not writer.is_alive() or writer is threading.current_thread():
            return
        done = threading.Event()
        self._records.put_nowait(done)
        done.wait(_WAIT_SECONDS)

    def setStream(self, stream: IO[str]) -> IO[str] | None:
        """Write to `stream` from now on (after flushing); the old stream, as StreamHandler."""
        self.flush()
        if stream is self.stream:
            return None
        old, self.stream = self.stream, stream
        return old

    def close(self) -> None:
        with self._writer_lock:
            self._closed = True
            writer, self._writer = self._writer, None
        if writer is not None and writer.is_alive() and writer is not threading.current_thread():
            self._records.put_nowait(_STOP)
            writer.join(_WAIT_SECONDS)
        leftovers: list[Any] = []  # queued by another thread while the writer stopped
        while True:
            try:
                leftovers.append(self._records.get_nowait())
            except queue.Empty:
                break
        if leftovers:
            self._handle(leftovers)
        super().close()

    def _after_fork_in_child(self) -> None:
        # The writer thread does not exist in a forked child: start a fresh one on demand. The
        # parent's queued records stay the parent's to write.
        self.queue = self._records = queue.SimpleQueue()
        self._writer = None
        self._writer_lock = threading.Lock()
        self._io_lock = threading.Lock()


# fork() while the writer is mid-write would copy a half-written stream buffer into the child:
# hold every writer's I/O lock across the fork (bounded: a stuck sink must not hang fork()).
_held_across_fork: list[threading.Lock] = []


def _before_fork() -> None:
    for handler in list(_live_handlers):
        if handler._io_lock.acquire(timeout=1.0):
            _held_across_fork.append(handler._io_lock)


def _after_fork_in_parent() -> None:
    while _held_across_fork:
        _held_across_fork.pop().release()


def _after_fork_in_child() -> None:
    _held_across_fork.clear()  # the child gets fresh locks
    for handler in list(_live_handlers):
        handler._after_fork_in_child()


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
)


def build_handler(settings: Settings) -> logging.Handler:
    handler = BackgroundStreamHandler()
    handler.setFormatter(JsonFormatter() if log_format(settings) == "json" else TextFormatter())
    return handler


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(build_handler(settings))
    root.setLevel(level)
    # uvicorn's own loggers propagate to the root handler instead of printing their own format.
    for name in _ROUTED_LOGGERS:
        routed = logging.getLogger(name)
        routed.handlers.clear()
        routed.propagate = True
    install_on_root()  # the new handler masks loaded secret values and credentials
