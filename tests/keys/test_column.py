"""`EncryptedText` on the real PostgreSQL: only `Sealed` values go in, `Sealed` values come out,
the table holds ciphertext only, and a ciphertext moved to another row does not open there."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import String, Uuid, func, select, text, update
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.keys.column import EncryptedText
from app.keys.data import DataKeyRing, Sealed, SealedError, field_context, new_data_jwk
from tests.support.services import create_database, drop_database


class Base(DeclarativeBase):
    pass


class Account(Base):
    """A throwaway table for these tests only (never part of the app's migrations)."""

    __tablename__ = "keys_column_test_accounts"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(50))
    totp_secret: Mapped[Sealed | None] = mapped_column(EncryptedText, nullable=True)


def context(account_id: uuid.UUID) -> bytes:
    return field_context(Account.__tablename__, "totp_secret", account_id)


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[AsyncEngine]:
    url = await create_database("keys")
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        yield engine
    finally:
        await engine.dispose()
        await drop_database(url)


@pytest.fixture
def ring() -> DataKeyRing:
    import json

    return DataKeyRing.parse(json.dumps({"keys": [new_data_jwk()]}))


async def test_sealed_values_round_trip_and_the_table_holds_ciphertext_only(
    engine: AsyncEngine, ring: DataKeyRing
) -> None:
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    seeds = {f"user-{i}": f"JBSWY3DPEHPK3PX{i}".encode() for i in range(3)}
    async with sessions.begin() as session:
        for name, seed in seeds.items():
            account = Account(id=uuid.uuid4(), name=name)
            account.totp_secret = ring.seal(seed, context(account.id))
            session.add(account)
        session.add(Account(id=uuid.uuid4(), name="no-mfa"))

    async with sessions() as session:
        accounts = (await session.scalars(select(Account).order_by(Account.name))).all()
    loaded = {a.name: a for a in accounts}
    assert loaded["no-mfa"].totp_secret is None
    for name, seed in seeds.items():
        value = loaded[name].totp_secret
        assert isinstance(value, Sealed)
        assert ring.open(value, context(loaded[name].id)) == seed

    # Every column of every row, as PostgreSQL renders it (what a dump would hold).
    async with engine.connect() as connection:
        result = await connection.execute(text("SELECT t::text FROM keys_column_test_accounts t"))
        rows = list(result.scalars())
    assert len(rows) == 4
    kid = ring.keys[0].kid
    for row in rows:
        for seed in seeds.values():
            assert seed.decode() not in row
    assert sum(f"v1.{kid}." in row for row in rows) == 3


@pytest.mark.parametrize("plaintext", ["JBSWY3DPEHPK3PXP", b"JBSWY3DPEHPK3PXP"])
async def test_binding_plain_text_or_bytes_raises_type_error_and_writes_nothing(
    engine: AsyncEngine, plaintext: str | bytes
) -> None:
    sessions = async_sessionmaker(engine)
    name = f"plain-{uuid.uuid4().hex[:8]}"
    with pytest.raises(StatementError) as info:
        async with sessions.begin() as session:
            session.add(Account(id=uuid.uuid4(), name=name, totp_secret=plaintext))  # type: ignore[arg-type]
    assert isinstance(info.value.orig, TypeError)
    assert "stores Sealed values only" in str(info.value.orig)
    assert "JBSWY3DPEHPK3PXP" not in str(info.value.orig)

    # A WHERE clause cannot compare the column with plaintext either.
    async with sessions() as session:
        with pytest.raises(StatementError):
            await session.scalars(select(Account).where(Account.totp_secret == plaintext))
        count = await session.scalar(
            select(func.count()).select_from(Account).where(Account.name == name)
        )
    assert count == 0


async def test_a_ciphertext_copied_to_another_row_does_not_open_there(
    engine: AsyncEngine, ring: DataKeyRing
) -> None:
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    victim = Account(id=uuid.uuid4(), name="victim")
    attacker = Account(id=uuid.uuid4(), name="attacker")
    victim.totp_secret = ring.seal(b"victim seed", context(victim.id))
    attacker.totp_secret = ring.seal(b"attacker seed", context(attacker.id))
    async with sessions.begin() as session:
        session.add_all([victim, attacker])

    # Someone with write access to the table copies the victim's value into their own row.
    async with engine.begin() as connection:
        await connection.execute(
            update(Account.__table__)
            .where(Account.__table__.c.id == attacker.id)
            .values(totp_secret=victim.totp_secret)
        )
    async with sessions() as session:
        copied = await session.get(Account, attacker.id)
    assert copied is not None
    assert copied.totp_secret == victim.totp_secret
    with pytest.raises(SealedError, match="another row, column or user"):
        ring.open(copied.totp_secret, context(attacker.id))  # type: ignore[arg-type]
    assert ring.open(copied.totp_secret, context(victim.id)) == b"victim seed"  # type: ignore[arg-type]


async def test_a_malformed_stored_value_is_refused_on_load(engine: AsyncEngine) -> None:
    account_id = uuid.uuid4()
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO keys_column_test_accounts (id, name, totp_secret) "
                "VALUES (:id, 'legacy', 'JBSWY3DPEHPK3PXP')"
            ),
            {"id": account_id},
        )
    sessions = async_sessionmaker(engine)
    async with sessions() as session:
        with pytest.raises(SealedError, match="not a sealed value"):
            await session.get(Account, account_id)
