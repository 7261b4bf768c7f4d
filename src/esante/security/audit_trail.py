"""The append-only, hash-chained audit trail, and the auditor that feeds it from the REST router.

Every AuditEvent is stored twice over: as a FHIR resource through the store (indexed, so a patient can search the
AuditEvents of their compartment) and as a row of ``audit_chain`` that links it to the previous one:

    hash = sha256(prev_hash || canonical JSON of the stored AuditEvent)      (prev_hash of the first row: 64 zeros)

Two steps, so that a request pays only for durability:

1. **journal** (the request's own cost): the request's AuditEvents, with their ids, are inserted into
   ``audit_journal`` in ONE autocommitted statement before the answer leaves (concurrent requests share the
   statement: group commit). If that fails the request fails (500): nothing is served unaudited.
2. **chain** (the chainer): journal rows are taken in order, stored as indexed AuditEvent resources, linked into
   ``audit_chain`` and deleted from the journal, in one transaction per batch. ``esante serve`` on PostgreSQL runs
   it in a process of its own (``audit_chain_process.py``; its workers are built with ``background=False`` and only
   journal); otherwise a chainer task in every process wakes at each journal write, so an event is chained a few
   milliseconds after its request. Either way, anything that reads AuditEvents (a search, ``esante audit
   verify``) first chains what is pending, so readers always see every event already answered for.

Chaining is serial: on PostgreSQL the chaining transaction takes a transaction-scoped advisory lock on a fixed key
before reading the chain's tail (several workers' chainers queue up and never fork the chain); SQLite write
transactions are serial already. :meth:`AuditTrail.verify` walks the chain in order and reports the first broken
link (a row removed, reordered or altered, or an AuditEvent whose stored bytes no longer match their hash).

The REST API never writes AuditEvents (the router refuses with 405); only :class:`Auditor` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

import orjson
import structlog

from esante.db.engine import Database
from esante.fhir.context import Outcome, RequestContext
from esante.fhir.definitions import Registry
from esante.fhir.model import StoredResource, micros_to_instant
from esante.fhir.store import ResourceStore, StoreSession
from esante.security.audit import (
    AuditRecord,
    Touched,
    build_events,
    interaction_of,
    patient_from_path,
    patients_of,
)
from esante.security.audit_decisions import decision_events

log = structlog.get_logger("esante.audit")

GENESIS = "0" * 64
_CHAIN_PERIOD = 1.0  # seconds between chainer sweeps when nothing wakes it
_CHAIN_LOCK_KEY = 0x65_53_61_6E_74_65_41_75  # "eSanteAu": one fixed advisory lock key for the chain's tail
_BATCH = 1000
_TAIL = "SELECT hash FROM audit_chain ORDER BY seq DESC LIMIT 1"
# PostgreSQL: a batch's chain rows in one INSERT, in their order (seq is assigned in the order rows are inserted)
_CHAIN_ARRAYS = (
    "INSERT INTO audit_chain (rid, res_id, recorded, hash, prev_hash) "
    "SELECT rid, res_id, recorded, hash, prev_hash "
    "FROM unnest(?::bigint[], ?::text[], ?::bigint[], ?::text[], ?::text[]) "
    "WITH ORDINALITY AS u(rid, res_id, recorded, hash, prev_hash, n) ORDER BY n"
)

Annotator = Callable[[AuditRecord, list[dict[str, Any]]], Awaitable[None]]
"""``(record, events) -> None``: a service adds what only it knows to an interaction's REST AuditEvents before
they are journaled (the DSP: the capacity in which a professional reached a patient's documents). It may add
codings, details and entities; it never removes one. The events of one record share nested objects (agents, the
query entity): an annotator replaces a list or dict it changes rather than changing it in place."""


async def _lock_chain(session: StoreSession) -> None:
    if session.conn.dialect.is_postgres:
        await session.conn.fetchval("SELECT pg_advisory_xact_lock(?)", (_CHAIN_LOCK_KEY,))


def canonical(content: bytes) -> bytes:
    """The canonical JSON bytes of a stored resource (keys sorted, no insignificant whitespace)."""
    return orjson.dumps(orjson.loads(content), option=orjson.OPT_SORT_KEYS)


def chain_hash(prev_hash: str, content: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(content)).hexdigest()


class VerifyResult(NamedTuple):
    ok: bool
    checked: int
    first_broken_seq: int | None
    reason: str


class AuditTrail:
    """Append AuditEvents (resource + chain row) and verify the chain."""

    async def append(self, session: StoreSession, event: dict[str, Any]) -> StoredResource:
        """Store ``event`` and link it to the chain, inside ``session``'s transaction (flushes it)."""
        return (await self.append_many(session, [event]))[0]

    async def append_many(self, session: StoreSession, events: Sequence[dict[str, Any]]) -> list[StoredResource]:
        """Store ``events`` and link them, in order, to the chain inside ``session``'s transaction.

        The chain's tail is read under the append lock (PostgreSQL: advisory transaction lock on a fixed key;
        SQLite: write transactions are serial), so concurrent appenders queue up and never fork the chain.
        """
        await _lock_chain(session)
        prev = await session.conn.fetchval(_TAIL)
        stored = [await session.create(event, client_id=False) for event in events]
        await self._link(session, stored, str(prev) if prev is not None else GENESIS, [])
        return stored

    async def chain_pending(self, session: StoreSession, limit: int) -> int:
        """Move up to ``limit`` journaled events, oldest first, into the store and the chain; returns how many.

        Runs inside ``session``'s transaction under the chain's lock, so the journal rows are read, stored,
        linked and deleted by one chainer at a time, all or nothing. After the lock: one statement reads the
        journal and the chain's tail (a statement of its own, so that it sees what the previous holder of the
        lock committed), one writes everything (PostgreSQL; see :meth:`_link`).
        """
        await _lock_chain(session)
        conn = session.conn
        rows = await conn.fetch(
            f"SELECT j.id, j.res_id, j.content, ({_TAIL}) FROM audit_journal j ORDER BY j.id LIMIT ?", (limit,)
        )
        if not rows:
            return 0
        stored = [
            await session.create(orjson.loads(bytes(content)), res_id=str(res_id), client_id=False)
            for _id, res_id, content, _tail in rows
        ]
        tail = rows[0][3]
        await self._link(session, stored, str(tail) if tail is not None else GENESIS, [int(row[0]) for row in rows])
        return len(rows)

    async def pending(self, database: Database) -> int:
        """Events journaled but not chained yet."""
        async with database.read() as conn:
            return int(await conn.fetchval("SELECT COUNT(*) FROM audit_journal") or 0)

    async def _link(
        self, session: StoreSession, stored: list[StoredResource], prev_hash: str, journal_ids: list[int]
    ) -> None:
        """Write the staged AuditEvents, their chain rows (after ``prev_hash``) and delete their journal rows.

        PostgreSQL: all in the store's one flush statement (chain rows inserted in order: ``seq`` follows it);
        SQLite: the flush, one executemany, one DELETE.
        """
        if not stored:
            await session.flush()
            return
        rows: list[tuple[Any, ...]] = []
        for item in stored:
            assert item.content is not None
            hash_ = chain_hash(prev_hash, item.content)
            rows.append((item.rid, item.res_id, item.last_updated, hash_, prev_hash))
            prev_hash = hash_
        conn = session.conn
        if conn.dialect.is_postgres:
            also: list[tuple[str, Sequence[Any]]] = [
                (_CHAIN_ARRAYS, [list(column) for column in zip(*rows, strict=True)])
            ]
            if journal_ids:
                also.append(("DELETE FROM audit_journal WHERE id = ANY(?::bigint[])", [journal_ids]))
            await session.flush(also=also)
            return
        await session.flush()
        await conn.executemany(
            "INSERT INTO audit_chain (rid, res_id, recorded, hash, prev_hash) VALUES (?, ?, ?, ?, ?)", rows
        )
        if journal_ids:
            marks = ", ".join("?" * len(journal_ids))
            await conn.execute(f"DELETE FROM audit_journal WHERE id IN ({marks})", journal_ids)

    async def count(self, database: Database) -> int:
        async with database.read() as conn:
            return int(await conn.fetchval("SELECT COUNT(*) FROM audit_chain") or 0)

    async def verify(self, database: Database, progress: Callable[[int], None] | None = None) -> VerifyResult:
        """Walk the chain in ``seq`` order; the first broken link stops the walk.

        ``progress`` is called with the number of rows checked so far after each batch. Then every AuditEvent
        version in the store must have been chained: one written beside the trail (or a second version of one)
        is reported too, with no ``seq``. The versions are counted *before* the walk, so events appended while
        it runs cannot be mistaken for unchained ones.
        """
        async with database.read() as conn:
            versions = int(await conn.fetchval("SELECT COUNT(*) FROM resource WHERE res_type = 'AuditEvent'") or 0)
        expected_prev = GENESIS
        checked = 0
        last_seq = 0
        while True:
            async with database.read() as conn:
                rows = await conn.fetch(
                    "SELECT c.seq, c.res_id, c.hash, c.prev_hash, r.res_id, r.content FROM audit_chain c "
                    "LEFT JOIN resource r ON r.rid = c.rid AND r.version_id = 1 AND r.res_type = 'AuditEvent' "
                    "WHERE c.seq > ? ORDER BY c.seq LIMIT ?",
                    (last_seq, _BATCH),
                )
            if not rows:
                break
            for seq, res_id, hash_, prev_hash, stored_id, content in rows:
                seq = int(seq)
                broken = _check(expected_prev, str(res_id), str(hash_), str(prev_hash), stored_id, content)
                if broken is not None:
                    return VerifyResult(False, checked, seq, broken)
                checked += 1
                expected_prev = str(hash_)
                last_seq = seq
            if progress is not None:
                progress(checked)
        if versions > checked:
            unchained = versions - checked
            return VerifyResult(
                False, checked, None, f"{unchained} AuditEvent version(s) in the store are not in the chain"
            )
        return VerifyResult(True, checked, None, "")


def _check(expected_prev: str, res_id: str, hash_: str, prev_hash: str, stored_id: Any, content: Any) -> str | None:
    if prev_hash != expected_prev:
        return "prev_hash does not match the previous record's hash (a record was removed, inserted or reordered)"
    if content is None:
        return f"AuditEvent/{res_id} is missing from the store"
    if stored_id != res_id:
        return f"the chain names AuditEvent/{res_id} but the stored row is AuditEvent/{stored_id}"
    # a row edited in SQL may come back as text (SQLite's replace() returns TEXT)
    data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
    try:
        actual = chain_hash(prev_hash, data)
    except orjson.JSONDecodeError:
        return f"AuditEvent/{res_id} is not valid JSON any more"
    if actual != hash_:
        return f"AuditEvent/{res_id} does not match its hash (the stored record was altered)"
    return None


class Auditor:
    """Turns each REST interaction into BALP AuditEvents, journals them durably and has them chained.

    ``record``/``record_events`` return once the events are durable in the journal (see the module docstring);
    ``flush`` chains whatever is pending; the chainer task does it in the background (started on first use,
    stopped by ``close``).
    """

    def __init__(
        self,
        store: ResourceStore,
        registry: Registry,
        trail: AuditTrail | None = None,
        *,
        chain_batch: int | None = None,
        background: bool = True,
    ) -> None:
        self.store = store
        # False: another process chains (``esante serve``'s chain process, audit_chain_process.py); this one only
        # journals, and chains before a read of the trail
        self.background = background
        self.registry = registry
        self.trail = trail or AuditTrail()
        # A batch is stored and indexed on the event loop (~0.25 ms of CPU an event): batches of 64 keep the
        # loop's other requests from waiting more than ~15 ms behind the chainer (500 gave p99 spikes of 0.5 s);
        # SQLite's single connection makes requests wait for the whole batch's transaction: smaller still.
        self.chain_batch = chain_batch or (64 if store.database.dialect.is_postgres else 32)
        self._pending: list[tuple[list[tuple[str, bytes]], asyncio.Future[None]]] = []
        self._draining = False
        self._writer: asyncio.Task[None] | None = None  # the background journal writer, referenced while it runs
        self._chainer: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._chain_lock: asyncio.Lock | None = None
        self.annotators: list[Annotator] = []

    def add_annotator(self, annotator: Annotator) -> None:
        """Where a service adds facts of its own to the REST AuditEvents (see :data:`Annotator`)."""
        if annotator not in self.annotators:
            self.annotators.append(annotator)

    def record_of(
        self,
        *,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        body: bytes,
        ctx: RequestContext,
        status: int,
        outcome: Outcome | None,
    ) -> AuditRecord:
        from urllib.parse import urlencode

        method = method.upper()
        parts = [p for p in path.split("/") if p]
        body_type = None
        if method == "POST" and not parts and body:
            try:
                parsed = orjson.loads(body)
                body_type = parsed.get("type") if isinstance(parsed, dict) else None
            except orjson.JSONDecodeError:
                body_type = None
        interaction = interaction_of(method, parts, status, body_type)
        query_string = urlencode(list(query))
        if method == "POST" and parts and parts[-1] == "_search" and body:
            form = body.decode("utf-8", "replace")
            query_string = f"{query_string}&{form}" if query_string else form
        touched = tuple(self._touched(outcome)) if outcome is not None else ()
        res_type = parts[0] if parts and not parts[0].startswith(("_", "$")) and parts[0] != "metadata" else None
        res_id = parts[1] if len(parts) >= 2 and not parts[1].startswith(("_", "$")) else None
        return AuditRecord(
            interaction=interaction,
            status=status,
            caller=ctx.caller,
            request_id=ctx.request_id,
            recorded=micros_to_instant(self.store.clock.now()),
            server=ctx.base_url,
            method=method,
            path=path.strip("/"),
            query_string=query_string,
            client_address=ctx.client_address,
            resource_type=res_type,
            resource_id=res_id,
            touched=touched,
            patients=patient_from_path(parts),
            entities=outcome.audit_entities if outcome is not None else (),
        )

    def _touched(self, outcome: Outcome) -> list[Touched]:
        resources = list(outcome.touched) if outcome.touched is not None else []
        if not resources and outcome.stored is not None:
            resources = [outcome.stored]
        touched: list[Touched] = []
        for stored in resources:
            patients: tuple[str, ...] = ()
            if stored.content is not None:
                patients = patients_of(self.registry, orjson.loads(stored.content))
            elif stored.res_type == "Patient":
                patients = (f"Patient/{stored.res_id}",)
            touched.append(Touched(f"{stored.res_type}/{stored.res_id}", patients))
        return touched

    async def record(self, record: AuditRecord, decisions: list[Any] | None = None) -> None:
        """Journal the record's AuditEvents (and its decisions' AuthZ events); returns once they are durable."""
        events = build_events(record)
        for annotator in self.annotators:
            try:
                await annotator(record, events)
            except Exception as exc:  # the access is recorded anyway, without the service's facts
                log.error("audit.annotator_failed", error_type=type(exc).__name__, request_id=record.request_id)
        if decisions:
            events += decision_events(record, decisions)
        await self.record_events(events)

    async def record_events(self, events: list[dict[str, Any]]) -> None:
        """Journal prebuilt AuditEvents durably, then wake the chainer.

        Group commit: requests arriving while a journal insert runs are queued and written together by the next
        one, so concurrent requests share one statement. Every caller still returns only after its own events
        are durable. The request that finds no writer running writes its own group, then hands what queued
        meanwhile to a background writer: no request waits for other requests' groups after its own.
        """
        if not events:
            return
        rows = []
        for event in events:
            res_id = self.store.new_id()
            rows.append((res_id, orjson.dumps({**event, "id": res_id})))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((rows, future))
        if not self._draining:
            self._draining = True
            try:
                batch, self._pending = self._pending, []
                await self._journal(batch)
            finally:
                if self._pending:
                    self._writer = asyncio.get_running_loop().create_task(self._drain())
                else:
                    self._draining = False
        await future
        self._kick()

    async def _drain(self) -> None:
        """Write the queued groups until the queue is empty (the background journal writer)."""
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await self._journal(batch)
        finally:
            self._draining = False
            for _rows, waiting in self._pending:  # only left when the writer itself was cancelled
                if not waiting.done():
                    waiting.set_exception(RuntimeError("the audit writer was interrupted"))
            self._pending = []

    async def _journal(self, batch: list[tuple[list[tuple[str, bytes]], asyncio.Future[None]]]) -> None:
        rows = [row for group, _ in batch for row in group]
        try:
            async with self.store.database.read() as conn:  # autocommit: each statement is durable on its own
                for start in range(0, len(rows), _BATCH):
                    chunk = rows[start : start + _BATCH]
                    values = ", ".join("(?, ?)" for _ in chunk)
                    params = [value for row in chunk for value in row]
                    await conn.execute(f"INSERT INTO audit_journal (res_id, content) VALUES {values}", params)
        except BaseException as exc:
            for _rows, waiting in batch:
                if not waiting.done():
                    waiting.set_exception(exc if isinstance(exc, Exception) else RuntimeError("audit interrupted"))
            if not isinstance(exc, Exception):
                raise
            return
        for _rows, waiting in batch:
            if not waiting.done():
                waiting.set_result(None)

    # --- chaining ------------------------------------------------------------------------------------------------

    def _kick(self) -> None:
        """Wake the chainer (starting it in this event loop on first use)."""
        if self._wake is None:
            self._wake = asyncio.Event()
            self._chain_lock = asyncio.Lock()
        if not self.background:
            return
        if self._chainer is None or self._chainer.done():
            self._chainer = asyncio.get_running_loop().create_task(self._chain_forever())
        self._wake.set()

    async def flush(self, *, yielding: bool = False) -> int:
        """Chain every journaled event (this process's and any other's); returns how many were chained.

        ``yielding`` (the background chainer): let waiting requests run between batches.
        """
        if self._chain_lock is None:
            self._wake = asyncio.Event()
            self._chain_lock = asyncio.Lock()
        total = 0
        while True:
            async with self._chain_lock, self.store.database.transaction() as conn:
                done = await self.trail.chain_pending(self.store.session(conn), self.chain_batch)
            total += done
            if done < self.chain_batch:
                return total
            if yielding:
                await asyncio.sleep(0)

    async def _chain_forever(self) -> None:
        """The chainer: chain after every wake-up, and at least every second (events journaled by other
        processes, or left by a crash). A failure is logged and retried: the events stay in the journal."""
        assert self._wake is not None
        while True:
            # asyncio.timeout, not wait_for: cancelling a task inside Python 3.11's wait_for could leave it
            # waiting forever on the inner Event (seen at shutdown: the chainer never finished cancelling)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CHAIN_PERIOD):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush(yielding=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("audit.chain_failed", error_type=type(exc).__name__)
                await asyncio.sleep(_CHAIN_PERIOD)

    async def close(self) -> None:
        """Stop the chainer after a last flush (at shutdown: nothing journaled is left behind needlessly)."""
        chainer, self._chainer = self._chainer, None
        if chainer is not None:
            chainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await chainer
        with contextlib.suppress(Exception):
            await self.flush()
