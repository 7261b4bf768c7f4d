"""``wse_affiliation``: the affiliations as the eligibility check reads them, derived from the Coverage resources.

Store hooks keep one row per CCSS Coverage in the transaction that writes the Coverage (created, updated, deleted):
the Coverage is the source of truth, the row its index. A Coverage that is not a CCSS affiliation (no affiliation
number, no matricule) has no row. A bulk writer (the import) asks the index to *defer* its rows for a session and
writes them in one statement before its transaction commits (:meth:`AffiliationIndex.deferred`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from esante.db.engine import Connection
from esante.fhir.hooks import HookEvent, HookRegistry, Pointcut
from esante.fhir.store import StoreSession
from esante.wse.model import AffiliationRow, row_of

_COLUMNS = (
    "rid",
    "coverage_id",
    "affiliation_id",
    "matricule",
    "insurer",
    "coverage_type",
    "status",
    "start_date",
    "end_date",
)
_UPSERT = (
    f"INSERT INTO wse_affiliation ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)}) "
    "ON CONFLICT (rid) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != "rid")
)


def _values(rid: int, coverage_id: str, row: AffiliationRow) -> tuple[Any, ...]:
    return (
        rid,
        coverage_id,
        row.affiliation_id,
        row.matricule,
        row.insurer,
        row.coverage_type,
        row.status,
        row.start,
        row.end,
    )


@dataclass
class _Deferred:
    created: list[tuple[Any, ...]] = field(default_factory=list)  # new rids: COPY
    changed: list[tuple[Any, ...]] = field(default_factory=list)  # existing rids: upsert
    removed: list[int] = field(default_factory=list)


class AffiliationIndex:
    """The hooks that derive ``wse_affiliation`` from Coverage writes."""

    def __init__(self) -> None:
        self._deferred: dict[int, _Deferred] = {}  # id(session) → rows waiting for the bulk writer

    def install(self, hooks: HookRegistry) -> None:
        hooks.register(Pointcut.STORAGE_PRECOMMIT_CREATED, self._written, {"Coverage"})
        hooks.register(Pointcut.STORAGE_PRECOMMIT_UPDATED, self._written, {"Coverage"})
        hooks.register(Pointcut.STORAGE_PRECOMMIT_DELETED, self._deleted, {"Coverage"})

    async def _written(self, event: HookEvent) -> None:
        assert event.stored is not None and event.resource is not None
        stored = event.stored
        row = row_of(event.resource)
        pending = self._deferred.get(id(event.session))
        if pending is not None:
            if row is None:
                pending.removed.append(stored.rid)
            elif event.pointcut is Pointcut.STORAGE_PRECOMMIT_CREATED:
                pending.created.append(_values(stored.rid, stored.res_id, row))
            else:
                pending.changed.append(_values(stored.rid, stored.res_id, row))
            return
        conn = event.session.conn
        if row is None:
            await conn.execute("DELETE FROM wse_affiliation WHERE rid = ?", (stored.rid,))
        else:
            await conn.execute(_UPSERT, _values(stored.rid, stored.res_id, row))

    async def _deleted(self, event: HookEvent) -> None:
        assert event.stored is not None
        pending = self._deferred.get(id(event.session))
        if pending is not None:
            pending.removed.append(event.stored.rid)
            return
        await event.session.conn.execute("DELETE FROM wse_affiliation WHERE rid = ?", (event.stored.rid,))

    @asynccontextmanager
    async def deferred(self, session: StoreSession) -> AsyncIterator[None]:
        """Inside the block the session's Coverage writes queue their rows; they are written when it ends without
        an error (in the session's transaction, which the caller then commits): a COPY for the new ones."""
        key = id(session)
        pending = self._deferred[key] = _Deferred()
        try:
            yield
        finally:
            del self._deferred[key]
        conn = session.conn
        if pending.removed:
            await _delete_rids(conn, pending.removed)
        if pending.changed:
            await conn.executemany(_UPSERT, pending.changed)
        if pending.created:
            await conn.copy_rows("wse_affiliation", _COLUMNS, pending.created)


async def _delete_rids(conn: Connection, rids: Sequence[int]) -> None:
    for start in range(0, len(rids), 500):
        chunk = list(rids[start : start + 500])
        await conn.execute(f"DELETE FROM wse_affiliation WHERE rid IN ({', '.join('?' * len(chunk))})", chunk)


async def rebuild(conn: Connection) -> int:
    """Derive the table again from the current Coverages (after a restore, or to check it): returns the rows."""
    await conn.execute("DELETE FROM wse_affiliation")
    rows = await conn.fetch(
        "SELECT rid, res_id, content FROM resource WHERE res_type = 'Coverage' AND is_current AND NOT deleted"
    )
    values = []
    for rid, res_id, content in rows:
        row = row_of(orjson.loads(bytes(content)))
        if row is not None:
            values.append(_values(int(rid), str(res_id), row))
    await conn.copy_rows("wse_affiliation", _COLUMNS, values)
    return len(values)
