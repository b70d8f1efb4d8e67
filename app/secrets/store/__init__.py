"""The SecretStore and what it holds: `store.py` (snapshot and reads), `loader.py` (fetch, parse,
check), `refresher.py` (the rotation loop), `entries.py` (entries and typed failures)."""

from app.secrets.store.entries import (
    SECRET_LOADED,
    SECRET_REFRESH_FAILED,
    SECRET_ROTATED,
    FetchFailure,
    SecretEntry,
)
from app.secrets.store.store import EventSink, RefreshObserver, SecretStore, missing_message

__all__ = [
    "SECRET_LOADED",
    "SECRET_REFRESH_FAILED",
    "SECRET_ROTATED",
    "EventSink",
    "FetchFailure",
    "RefreshObserver",
    "SecretEntry",
    "SecretStore",
    "missing_message",
]
