"""The resource store: the only code that reads or writes resources and their search indexes.

Every version is a row of ``resource`` (see db/schema.py); the current one has ``is_current``. A write, within
one :class:`StoreSession` (one database transaction):

* create: allocate ``rid``, insert version 1, insert its index rows;
* update: flip the current row's ``is_current`` with a guarded UPDATE (``version_id`` must still be the one read:
  a concurrent writer makes it match no row → 409), insert the new version, replace the index rows;
* delete: the same with a tombstone version (no content, ``deleted``) and no index rows.

Resource rows and index rows are buffered and written with one ``executemany`` per table when the session is
flushed (before any read in the same session, and before commit), which is what makes bundle ingest fast.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from esante.db.engine import Connection, Database, IntegrityViolation
from esante.fhir.errors import conflict, precondition_failed
from esante.fhir.hooks import HookEvent, HookRegistry, Pointcut
from esante.fhir.index_rows import IndexRows
from esante.fhir.indexing import extract_index_rows
from esante.fhir.model import StoredResource, micros_to_instant, row_to_stored

_SELECT_COLUMNS = "rid, res_type, res_id, version_id, last_updated, deleted, content"

# Column names and PostgreSQL array types of every table the store inserts into.
_ID = (("rid", "bigint"), ("res_type", "text"), ("param", "text"), ("grp", "int"))
_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "resource": (
        ("rid", "bigint"),
        ("res_type", "text"),
        ("res_id", "text"),
        ("version_id", "int"),
        ("last_updated", "bigint"),
        ("is_current", "bool"),
        ("deleted", "bool"),
        ("method", "text"),
        ("content", "bytea"),
    ),
    "string": (*_ID, ("value_norm", "text"), ("value_exact", "text")),
    "token": (*_ID, ("system", "text"), ("code", "text"), ("text_norm", "text")),
    "date": (*_ID, ("lo", "bigint"), ("hi", "bigint")),
    "number": (*_ID, ("value", "float8")),
    "quantity": (*_ID, ("value", "float8"), ("system", "text"), ("code", "text"), ("unit", "text")),
    "reference": (
        *_ID,
        ("target_type", "text"),
        ("target_id", "text"),
        ("target_version", "text"),
        ("url", "text"),
        ("ident_system", "text"),
        ("ident_value", "text"),
    ),
    "uri": (*_ID, ("value", "text")),
}
_INDEX_KINDS = tuple(kind for kind in _COLUMNS if kind != "resource")
_COLUMN_NAMES = {kind: tuple(c for c, _ in cols) for kind, cols in _COLUMNS.items()}
COPY_MIN_RESOURCES = 200  # PostgreSQL: a flush of at least this many creates (and no deletes) uses COPY


def _table(kind: str) -> str:
    return "resource" if kind == "resource" else f"idx_{kind}"


# SQLite: executemany of a plain INSERT. PostgreSQL: ONE statement per table whatever the row count, the rows
# travelling as one array per column (INSERT ... SELECT FROM unnest): measured ~10x faster than executemany.
_INSERT_ROWS = {
    kind: f"INSERT INTO {_table(kind)} ({', '.join(c for c, _ in cols)}) VALUES ({', '.join('?' for _ in cols)})"
    for kind, cols in _COLUMNS.items()
}
_INSERT_ARRAYS = {
    kind: f"INSERT INTO {_table(kind)} ({', '.join(c for c, _ in cols)}) "
    f"SELECT * FROM unnest({', '.join(f'?::{t}[]' for _, t in cols)})"
    for kind, cols in _COLUMNS.items()
}


class _Clock:
    """Strictly increasing microsecond timestamps, so history order follows write order within a process."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def now(self) -> int:
        with self._lock:
            stamp = max(time.time_ns() // 1000, self._last + 1)
            self._last = stamp
            return stamp


@dataclass
class StoreSession:
    """One database transaction's worth of store operations, with buffered writes."""

    store: ResourceStore
    conn: Connection
    caller: Any = None
    _resource_rows: list[tuple[Any, ...]] = field(default_factory=list)
    _index_rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    _pending_index_deletes: list[int] = field(default_factory=list)

    # ---------------------------------------------------------------- reads
    async def read(self, res_type: str, res_id: str) -> StoredResource | None:
        """The current version (possibly a deletion tombstone) or None when it never existed."""
        await self.flush()
        row = await self.conn.fetchrow(
            f"SELECT {_SELECT_COLUMNS} FROM resource WHERE res_type = ? AND res_id = ? AND is_current",
            (res_type, res_id),
        )
        return row_to_stored(row) if row else None

    async def vread(self, res_type: str, res_id: str, version_id: int) -> StoredResource | None:
        await self.flush()
        row = await self.conn.fetchrow(
            f"SELECT {_SELECT_COLUMNS} FROM resource WHERE res_type = ? AND res_id = ? AND version_id = ?",
            (res_type, res_id, version_id),
        )
        return row_to_stored(row) if row else None

    async def exists_any_version(self, res_type: str, res_id: str) -> bool:
        await self.flush()
        value = await self.conn.fetchval(
            "SELECT 1 FROM resource WHERE res_type = ? AND res_id = ? AND is_current", (res_type, res_id)
        )
        return value is not None

    async def plan_searches_per_execution(self) -> None:
        """Before a search on a connection that caches generic plans: custom plans until the transaction ends.

        Nothing on a read's autocommitted connection: there the pool it came from decided (``SET LOCAL`` would
        only cost a round trip, outside a transaction it changes nothing)."""
        if not self.conn.custom_plans and self.conn.in_transaction:
            await self.conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            self.conn.custom_plans = True

    async def lock_condition(self, res_type: str, criteria: str) -> None:
        """Serialise conditional writes with the same criteria until this transaction ends.

        Two concurrent ``If-None-Exist`` creates (or conditional updates) would otherwise both find no match and
        both create. PostgreSQL: a transaction-scoped advisory lock on a hash of the criteria; SQLite needs none
        (its write transactions are already serial).
        """
        if self.conn.dialect.is_postgres:
            normalized = "&".join(sorted(part for part in criteria.split("&") if part))
            await self.conn.fetchval(
                "SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (f"{res_type}?{normalized}",)
            )

    # ---------------------------------------------------------------- writes
    async def create(
        self,
        resource: dict[str, Any],
        *,
        res_id: str | None = None,
        client_id: bool = True,
        index_rows: IndexRows | None = None,
    ) -> StoredResource:
        """Store version 1 of a new resource.

        ``res_id`` with ``client_id`` is create-on-update (PUT with a client-chosen id); ``res_id`` without it
        is a server id reserved in advance (transaction bundles resolve urn:uuid references to it).
        ``index_rows``: the search-index rows of this very resource, extracted beforehand (a bulk import extracts
        them in worker processes); used only if no storage hook changes the resource, else extracted again.
        """
        res_type = resource["resourceType"]
        if index_rows is not None and self.store.hooks.has(Pointcut.STORAGE_PRESTORAGE_CREATE, res_type):
            before = orjson.dumps(resource)
            await self._fire(Pointcut.STORAGE_PRESTORAGE_CREATE, res_type, resource=resource)
            if orjson.dumps(resource) != before:
                index_rows = None
        else:
            await self._fire(Pointcut.STORAGE_PRESTORAGE_CREATE, res_type, resource=resource)
        new_id = res_id or self.store.new_id()
        rid = await self._next_rid()
        by_client = res_id is not None and client_id
        stored = self._stage_version(
            rid, res_type, new_id, 1, resource, "PUT" if by_client else "POST", index_rows=index_rows
        )
        if by_client:
            # client-chosen id: the unique index on current rows must see it now to detect races
            await self.flush()
        await self._fire(Pointcut.STORAGE_PRECOMMIT_CREATED, res_type, resource=resource, stored=stored)
        return stored

    async def update(self, resource: dict[str, Any], current: StoredResource, *, method: str = "PUT") -> StoredResource:
        """Store a new version over ``current`` (which may be a tombstone: update revives it)."""
        res_type = current.res_type
        await self._fire(Pointcut.STORAGE_PRESTORAGE_UPDATE, res_type, resource=resource, previous=current)
        await self._retire(current)
        stored = self._stage_version(current.rid, res_type, current.res_id, current.version_id + 1, resource, method)
        await self._fire(
            Pointcut.STORAGE_PRECOMMIT_UPDATED, res_type, resource=resource, stored=stored, previous=current
        )
        return stored

    async def delete(self, current: StoredResource) -> StoredResource:
        """Write a deletion tombstone as the new current version (history keeps every earlier version)."""
        res_type = current.res_type
        await self._fire(Pointcut.STORAGE_PRESTORAGE_DELETE, res_type, previous=current)
        await self._retire(current)
        stamp = self.store.clock.now()
        version = current.version_id + 1
        self._resource_rows.append((current.rid, res_type, current.res_id, version, stamp, True, True, "DELETE", None))
        stored = StoredResource(current.rid, res_type, current.res_id, version, stamp, True, None)
        await self._fire(Pointcut.STORAGE_PRECOMMIT_DELETED, res_type, stored=stored, previous=current)
        return stored

    async def _fire(self, pointcut: Pointcut, res_type: str, **values: Any) -> None:
        """Run the hooks registered for ``pointcut`` and this type (nothing to build when there are none)."""
        if self.store.hooks.has(pointcut, res_type):
            await self.store.hooks.fire(HookEvent(pointcut, self, self.caller, res_type, **values))

    async def flush(self, also: Sequence[tuple[str, Sequence[Any]]] = ()) -> None:
        """Write buffered rows: stale index rows out, then resources, then index rows.

        PostgreSQL: everything in ONE statement of data-modifying CTEs (all CTEs see the same snapshot, so the
        deletes cannot touch the rows inserted beside them); SQLite: one executemany per table.

        ``also`` (PostgreSQL only): more data-modifying statements (``?`` parameters; none may touch the rows
        written beside them) sent in that same statement, to save their round trips (the audit trail's chain
        rows and journal deletion).
        """
        if also and not self.conn.dialect.is_postgres:
            raise ValueError("flush(also=...) is for PostgreSQL only")
        deletes, self._pending_index_deletes = self._pending_index_deletes, []
        resources, self._resource_rows = self._resource_rows, []
        index_rows, self._index_rows = self._index_rows, {}
        if not (deletes or resources or index_rows or also):
            return
        try:
            if self.conn.dialect.is_postgres:
                await self._flush_postgres(deletes, resources, index_rows, also)
            else:
                await self._flush_sqlite(deletes, resources, index_rows)
        except IntegrityViolation as exc:
            raise conflict("a concurrent request wrote the same resource; retry with the current version") from exc

    async def _flush_postgres(
        self,
        deletes: list[int],
        resources: list[tuple[Any, ...]],
        index_rows: dict[str, list[tuple[Any, ...]]],
        also: Sequence[tuple[str, Sequence[Any]]] = (),
    ) -> None:
        if not deletes and len(resources) >= COPY_MIN_RESOURCES:
            # a bulk of creates (an import): COPY, one per table (less server and client work than arrays)
            for kind, rows in (("resource", resources), *index_rows.items()):
                await self.conn.copy_rows(_table(kind), _COLUMN_NAMES[kind], rows)
            for sql, values in also:
                await self.conn.execute(sql, values)
            return
        ctes: list[str] = []
        params: list[Any] = []
        if deletes:
            for kind in _INDEX_KINDS:
                ctes.append(f"d_{kind} AS (DELETE FROM idx_{kind} WHERE rid = ANY(?::bigint[]))")
                params.append(deletes)
        for kind, rows in (("resource", resources), *index_rows.items()):
            if rows:
                ctes.append(f"w_{kind} AS ({_INSERT_ARRAYS[kind]})")
                params.extend(list(column) for column in zip(*rows, strict=True))
        for i, (sql, values) in enumerate(also):
            ctes.append(f"x_{i} AS ({sql})")
            params.extend(values)
        await self.conn.execute("WITH " + ", ".join(ctes) + " SELECT 1", params)

    async def _flush_sqlite(
        self, deletes: list[int], resources: list[tuple[Any, ...]], index_rows: dict[str, list[tuple[Any, ...]]]
    ) -> None:
        conn = self.conn
        if deletes:
            for kind in _INDEX_KINDS:
                await conn.executemany(f"DELETE FROM idx_{kind} WHERE rid = ?", [(rid,) for rid in deletes])
        if resources:
            await conn.executemany(_INSERT_ROWS["resource"], resources)
        for kind, rows in index_rows.items():
            await conn.executemany(_INSERT_ROWS[kind], rows)

    # ---------------------------------------------------------------- internals
    def _stage_version(
        self,
        rid: int,
        res_type: str,
        res_id: str,
        version: int,
        resource: dict[str, Any],
        method: str,
        index_rows: IndexRows | None = None,
    ) -> StoredResource:
        stamp = self.store.clock.now()
        resource["id"] = res_id
        meta = resource.get("meta")
        meta = dict(meta) if isinstance(meta, dict) else {}
        meta["versionId"] = str(version)
        meta["lastUpdated"] = micros_to_instant(stamp)
        resource["meta"] = meta
        content = orjson.dumps(resource)
        self._resource_rows.append((rid, res_type, res_id, version, stamp, True, False, method, content))
        # id and meta.versionId/lastUpdated are not extracted (_id, _lastUpdated come from the resource row)
        self._stage_indexes(rid, res_type, index_rows if index_rows is not None else extract_index_rows(resource))
        return StoredResource(rid, res_type, res_id, version, stamp, False, content)

    def _stage_indexes(self, rid: int, res_type: str, rows: IndexRows) -> None:
        for kind in _INDEX_KINDS:
            values = getattr(rows, kind)
            if values:
                bucket = self._index_rows.setdefault(kind, [])
                bucket.extend((rid, res_type, *value) for value in values)

    async def _retire(self, current: StoredResource) -> None:
        """Make ``current`` a history row; zero rows touched means another writer got there first."""
        await self.flush()
        count = await self.conn.execute(
            "UPDATE resource SET is_current = FALSE WHERE rid = ? AND version_id = ? AND is_current",
            (current.rid, current.version_id),
        )
        if count != 1:
            raise conflict(
                f"{current.res_type}/{current.res_id} was changed by a concurrent request "
                f"(version {current.version_id} is no longer current); retry"
            )
        if not current.deleted:
            self._pending_index_deletes.append(current.rid)

    async def reserve_rids(self, count: int) -> None:
        """Make sure ``count`` logical keys are at hand (PostgreSQL: one round trip for a bulk of creates)."""
        if self.conn.dialect.is_postgres:
            await self.store.fill_rids(self.conn, count)

    async def _next_rid(self) -> int:
        if self.conn.dialect.is_postgres:
            return await self.store.next_rid(self.conn)
        # SQLite has no sequences; its write transactions are serialised (BEGIN IMMEDIATE), so the maximum
        # read once per transaction plus a local counter is race-free, even with a CLI writing beside the server.
        # The counter lives on the transaction's connection, not the session: a service writing through a session
        # of its own inside the same transaction (a hook, a notification) must not reuse a key still unflushed here.
        conn = self.conn
        rid = getattr(conn, "next_rid", None)
        if rid is None:
            top = await conn.fetchval("SELECT MAX(rid) FROM resource")
            rid = int(top or 0) + 1
        conn.next_rid = rid + 1  # type: ignore[attr-defined]
        return rid


class ResourceStore:
    """Factory of store sessions; holds what is shared across requests (hooks, clock, id generation)."""

    def __init__(self, database: Database, hooks: HookRegistry | None = None) -> None:
        self.database = database
        self.hooks = hooks or HookRegistry()
        self.clock = _Clock()
        # PostgreSQL logical keys fetched in blocks: one sequence round trip per RID_BLOCK single creates.
        # Keys of a rolled-back transaction are simply skipped (gaps are harmless).
        self._rids: deque[int] = deque()

    RID_BLOCK = 64

    async def fill_rids(self, conn: Connection, needed: int) -> None:
        """Have at least ``needed`` PostgreSQL logical keys at hand (one round trip when short)."""
        if len(self._rids) < needed:
            count = max(needed - len(self._rids), self.RID_BLOCK)
            rows = await conn.fetch("SELECT nextval('resource_rid_seq') FROM generate_series(1, ?)", (count,))
            self._rids.extend(int(r[0]) for r in rows)

    async def next_rid(self, conn: Connection) -> int:
        # another coroutine may empty the cache while we await the refill: check again before taking
        while not self._rids:
            await self.fill_rids(conn, 1)
        return self._rids.popleft()

    def new_id(self) -> str:
        """Server-assigned logical ids: UUIDs (no information leak, no coordination between nodes)."""
        return str(uuid.uuid4())

    def session(self, conn: Connection, caller: Any = None) -> StoreSession:
        return StoreSession(self, conn, caller)


def check_if_match(if_match: str | None, current: StoredResource | None) -> None:
    """Honour ``If-Match: W/"n"``: 412 when the current version differs (or the resource is absent)."""
    if not if_match:
        return
    wanted = if_match.strip()
    if wanted.startswith("W/"):
        wanted = wanted[2:]
    wanted = wanted.strip('"')
    if current is None or current.deleted or str(current.version_id) != wanted:
        have = "none" if current is None or current.deleted else str(current.version_id)
        raise precondition_failed(f"If-Match version {wanted} does not match the current version ({have})")
