"""`EncryptedText`: the one column type for values sealed with `DATA_KEYS`.

Its Python type is `Sealed`, never `str` or `bytes`: binding anything else (an insert, an update,
a WHERE clause) raises TypeError, so a plaintext seed cannot be written by mistake, and a loaded
value stays ciphertext until the code that needs it calls
`ring.open(row.column, field_context(table, column, row.id))`. Decryption is explicit because it
needs the row's id (the associated data) and the current ring, which a type decorator has no
business holding. The database sees the sealed text (`v1.<kid>.<nonce>.<ct>`), so
`data reencrypt` and the per-kid metric can find old values with SQL (`LIKE 'v1.<kid>.%'`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from app.keys.data import Sealed


class EncryptedText(TypeDecorator[Sealed]):
    impl = Text
    cache_ok = True

    @property
    def python_type(self) -> type[Sealed]:
        return Sealed

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, Sealed):
            # Never the value itself in the message: it may be the plaintext.
            raise TypeError(
                f"EncryptedText stores Sealed values only (DataKeyRing.seal), "
                f"not {type(value).__name__}"
            )
        return value.text

    def process_result_value(self, value: Any, dialect: Dialect) -> Sealed | None:
        if value is None:
            return None
        return Sealed(str(value))
