"""Two store sessions in one database transaction (a service writing through a session of its own, e.g. a hook or a
notification, while the caller's session still holds unflushed rows) never hand out the same logical key."""

from __future__ import annotations

from esante.db.engine import Database
from esante.fhir.store import ResourceStore


async def test_sessions_of_one_transaction_never_share_a_key(database: Database) -> None:
    store = ResourceStore(database)
    async with database.transaction() as conn:
        outer = store.session(conn)
        first = await outer.create({"resourceType": "Patient", "gender": "female"})  # staged, not yet written
        inner = store.session(conn)
        second = await inner.create({"resourceType": "Patient", "gender": "male"})
        await inner.flush()
        await outer.flush()  # before the fix: on SQLite, the same rid as the inner session's → IntegrityViolation
    assert first.rid != second.rid
    async with database.read() as conn:
        rows = await conn.fetch("SELECT rid, res_id FROM resource WHERE res_type = 'Patient' ORDER BY rid")
    assert {(row[0], row[1]) for row in rows} == {(first.rid, first.res_id), (second.rid, second.res_id)}


async def test_the_key_counter_starts_again_from_the_database_in_each_transaction(database: Database) -> None:
    """A key drawn in a transaction that rolled back, or written by another process, is never reused wrongly."""
    store = ResourceStore(database)
    async with database.transaction() as conn:
        session = store.session(conn)
        kept = await session.create({"resourceType": "Patient"})
        await session.flush()
    try:
        async with database.transaction() as conn:
            session = store.session(conn)
            await session.create({"resourceType": "Patient"})
            await session.flush()
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    async with database.transaction() as conn:
        session = store.session(conn)
        later = await session.create({"resourceType": "Patient"})
        await session.flush()
    assert later.rid > kept.rid
