"""Creating notifications inside the caller's transaction: rolled back with it, never twice for one key."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from esante.db.engine import Database
from esante.fhir.store import ResourceStore
from esante.notify import NotificationError, make_key, notify, outbox
from tests.notify.support import create_notification


class Boom(Exception):
    pass


async def _count(database: Database) -> tuple[int, int]:
    async with database.read() as conn:
        rows = await conn.fetchval("SELECT COUNT(*) FROM notify_outbox")
        resources = await conn.fetchval("SELECT COUNT(*) FROM resource WHERE res_type = 'Communication' AND is_current")
    return int(rows), int(resources)


async def test_a_rolled_back_transaction_leaves_no_notification(database: Database) -> None:
    store = ResourceStore(database)
    with pytest.raises(Boom):
        async with database.transaction() as conn:
            session = store.session(conn)
            await session.create({"resourceType": "Patient", "id": "p1"}, res_id="p1")
            await notify(session, recipient="Patient/p1", kind="dsp-new-document", text="New document", key="k1")
            await session.flush()
            raise Boom  # the service's own write fails after notifying: nothing of either may remain
    assert await _count(database) == (0, 0)


async def test_a_committed_notification_is_stored_with_its_outbox_row(database: Database) -> None:
    key = make_key("dsp-new-document", "Patient/p1", "DocumentReference/d1")
    created = await create_notification(
        database,
        recipient="Patient/p1",
        kind="dsp-new-document",
        text="New document: discharge letter",
        key=key,
        about=["DocumentReference/d1"],
    )
    assert created.created
    async with database.read() as conn:
        content = await conn.fetchval(
            "SELECT content FROM resource WHERE res_type = 'Communication' AND res_id = ? AND is_current",
            (created.id,),
        )
        row = await outbox.row(conn, created.id)
    resource = orjson.loads(bytes(content))
    assert resource["identifier"] == [{"system": "urn:esante:notification", "value": key}]
    assert row is not None and row["status"] == "pending" and row["recipient"] == "Patient/p1" and row["attempts"] == 0


async def test_the_same_key_never_notifies_twice(database: Database) -> None:
    request = {"recipient": "Patient/p1", "kind": "cve-reminder", "text": "MMR dose 2 is due"}
    key = make_key("cve-reminder", "Patient/p1", "MMR", 2)
    first = await create_notification(database, key=key, **request)
    again = await create_notification(database, key=key, **request)
    assert first.created and not again.created and again.id == first.id
    other = await create_notification(database, key=make_key("cve-reminder", "Patient/p1", "MMR", 3), **request)
    assert other.created and other.id != first.id
    assert await _count(database) == (2, 2)


async def test_the_same_key_in_concurrent_transactions_creates_one(database: Database) -> None:
    """Eight transactions race with one key (PostgreSQL: truly concurrent; SQLite: serialised writers)."""
    store = ResourceStore(database)
    key = make_key("cve-reminder", "Patient/p1", "DTaP-IPV", 4)
    started = asyncio.Event()

    async def one(i: int) -> bool:
        async with database.transaction() as conn:
            session = store.session(conn)
            # a write of the service's own before notifying, as the CVE job's transaction would have
            await session.create({"resourceType": "Basic", "code": {"text": f"job {i}"}})
            await session.flush()
            await started.wait()
            result = await notify(session, recipient="Patient/p1", kind="cve-reminder", text="due", key=key)
            await session.flush()
            await asyncio.sleep(0.05)  # hold the transaction open: the others must wait, then write nothing
            return result.created

    tasks = [asyncio.create_task(one(i)) for i in range(8)]
    await asyncio.sleep(0.1)
    started.set()
    results = await asyncio.gather(*tasks)
    assert sorted(results) == [False] * 7 + [True]
    assert await _count(database) == (1, 1)
    async with database.read() as conn:
        jobs = await conn.fetchval("SELECT COUNT(*) FROM resource WHERE res_type = 'Basic'")
    assert jobs == 8, "the losers' transactions went on and committed their own writes"


async def test_a_malformed_request_writes_nothing(database: Database) -> None:
    store = ResourceStore(database)
    async with database.transaction() as conn:
        session = store.session(conn)
        with pytest.raises(NotificationError, match="unknown notification kind"):
            await notify(session, recipient="Patient/p1", kind="nope", text="x", key="k")
        with pytest.raises(NotificationError, match="recipient"):
            await notify(session, recipient="Device/d", kind="cve-reminder", text="x", key="k")
    assert await _count(database) == (0, 0)


async def test_a_writer_session_of_the_services_own_needs_no_flush(database: Database) -> None:
    """A service notifying through a fresh session on its transaction's connection (the DSP's writer pattern)."""
    store = ResourceStore(database)
    async with database.transaction() as conn:
        outer = store.session(conn)
        created = await notify(
            outer.store.session(outer.conn), recipient="Patient/p1", kind="dsp-access-granted", text="x", key="k"
        )
        await outer.flush()
    assert created.created and await _count(database) == (1, 1)
