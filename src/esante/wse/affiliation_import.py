"""``esante wse import-affiliations FILE``: the CCSS affiliation feed into Coverage resources.

Idempotent, keyed on the affiliation number: an affiliation already stored is updated (a new version of its
Coverage, same id) only when what the CCSS states changed, and left alone otherwise; a new one is created. Every line
is the full state of one affiliation, so a delta file (new, changed, ended or annulled affiliations) goes through
the same path. Rejected lines are reported with their number and reason; the others are imported.

The CCSS feed is keyed by matricule, so the import does not need the MPI: each Coverage names its beneficiary by
matricule, and *also* by the MPI's certified Patient when one holds that matricule at import time (looked up per
batch). The eligibility check finds the person by matricule in any case.

Batches of ``batch_size`` lines are written in one transaction each (an interrupted import keeps what it finished
and is run again); ``wse_affiliation`` rows are derived by the store hooks, deferred to one COPY per batch, and the
store COPYs a bulk of new Coverages (docs/storage.md), so a first load runs at the store's bulk speed.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from esante.db.engine import Connection
from esante.fhir.model import StoredResource, row_to_stored
from esante.fhir.store import _SELECT_COLUMNS, ResourceStore
from esante.import_report import import_audit_event
from esante.wse.affiliation_store import AffiliationIndex
from esante.wse.insurers import ensure_insurers
from esante.wse.model import (
    MATRICULE_SYSTEM,
    Affiliation,
    AffiliationError,
    InsurerTable,
    check_affiliation,
    coverage_of,
)
from esante.wse.sources import Line

ANALYZE_FIRST = 20_000  # Coverages created by a run before the first ANALYZE (then at each doubling)
_LEVEL_TAG = ("urn:esante:identity-level", "certified")


@dataclass(frozen=True)
class Rejection:
    line: int
    reason: str


@dataclass
class ImportResult:
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    linked: int = 0  # Coverages written with the MPI's certified Patient as beneficiary
    rejected: list[Rejection] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return (self.read - len(self.rejected)) / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class _Checked:
    line: int
    affiliation: Affiliation


def _comparable(content: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in content.items() if k not in ("id", "meta", "text")}


class AffiliationImporter:
    def __init__(
        self, store: ResourceStore, index: AffiliationIndex, insurers: InsurerTable, batch_size: int = 1000
    ) -> None:
        self.store = store
        self.index = index
        self.insurers = insurers
        self.batch_size = max(1, batch_size)

    async def run(self, source: Iterable[Line], progress: Callable[[int], None] | None = None) -> ImportResult:
        result = ImportResult()
        started = time.perf_counter()
        await ensure_insurers(self.store, self.insurers)  # the payor references resolve
        thresholds = gc.get_threshold()
        gc.set_threshold(max(thresholds[0], 50_000), *thresholds[1:])  # short-lived containers by the million
        seen: set[str] = set()
        batch: list[_Checked] = []
        analyze_at = ANALYZE_FIRST
        try:
            for number, item in source:
                result.read += 1
                if isinstance(item, str):
                    result.rejected.append(Rejection(number, item))
                    continue
                try:
                    checked = check_affiliation(item, self.insurers)
                except AffiliationError as error:
                    result.rejected.append(Rejection(number, str(error)))
                    continue
                if checked.affiliation_id in seen:
                    result.rejected.append(
                        Rejection(number, f"affiliation_id: {checked.affiliation_id} appears twice in the file")
                    )
                    continue
                seen.add(checked.affiliation_id)
                batch.append(_Checked(number, checked))
                if len(batch) >= self.batch_size:
                    await self._write(batch, result)
                    batch = []
                    if progress is not None:
                        progress(result.read)
                    if result.created >= analyze_at:
                        await _analyze(self.store)
                        analyze_at = 2 * result.created
            if batch:
                await self._write(batch, result)
            if result.created >= ANALYZE_FIRST:
                await _analyze(self.store)
        finally:
            gc.set_threshold(*thresholds)
        if progress is not None:
            progress(result.read)
        result.seconds = time.perf_counter() - started
        return result

    async def _write(self, batch: list[_Checked], result: ImportResult) -> None:
        async with self.store.database.transaction() as conn:
            session = self.store.session(conn)
            await session.plan_searches_per_execution()  # look-ups of many values: planned with them
            existing = await _coverages_by_affiliation(conn, [c.affiliation.affiliation_id for c in batch])
            patients = await _certified_patients(conn, sorted({c.affiliation.matricule for c in batch}))
            await session.reserve_rids(len(batch) - len(existing))
            counts = {"created": 0, "updated": 0, "unchanged": 0, "linked": 0}
            async with self.index.deferred(session):
                for checked in batch:
                    affiliation = checked.affiliation
                    patient = patients.get(affiliation.matricule)
                    body = coverage_of(affiliation, self.insurers, patient)
                    if patient is not None:
                        counts["linked"] += 1
                    current = existing.get(affiliation.affiliation_id)
                    if current is None:
                        await session.create(body, res_id=str(uuid.uuid4()), client_id=False)
                        counts["created"] += 1
                        continue
                    assert current.content is not None or current.deleted
                    if (
                        not current.deleted
                        and current.content is not None
                        and _comparable(orjson.loads(current.content)) == body
                    ):
                        counts["unchanged"] += 1
                        continue
                    body["id"] = current.res_id
                    await session.update(body, current)
                    counts["updated"] += 1
            await session.flush()
        result.created += counts["created"]
        result.updated += counts["updated"]
        result.unchanged += counts["unchanged"]
        result.linked += counts["linked"]


async def _coverages_by_affiliation(conn: Connection, keys: list[str]) -> dict[str, StoredResource]:
    """The current Coverages of these affiliation numbers (through ``wse_affiliation``)."""
    columns = ", ".join("r." + c.strip() for c in _SELECT_COLUMNS.split(","))
    unique = sorted(set(keys))
    if conn.dialect.is_postgres:
        rows = await conn.fetch(
            f"SELECT a.affiliation_id, {columns} FROM unnest(?::text[]) AS k(id) "
            "JOIN wse_affiliation a ON a.affiliation_id = k.id JOIN resource r ON r.rid = a.rid AND r.is_current",
            [unique],
        )
    else:
        rows = []
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            rows += await conn.fetch(
                f"SELECT a.affiliation_id, {columns} FROM wse_affiliation a "
                "JOIN resource r ON r.rid = a.rid AND r.is_current "
                f"WHERE a.affiliation_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
    return {str(row[0]): row_to_stored(row[1:]) for row in rows}


async def _certified_patients(conn: Connection, matricules: list[str]) -> dict[str, str]:
    """matricule → the MPI's certified Patient holding it (one indexed probe per value; none: the person is not in
    the MPI yet, which the import does not need)."""
    if not matricules:
        return {}
    tag = (
        "EXISTS (SELECT 1 FROM idx_token g WHERE g.rid = t.rid AND g.res_type = 'Patient' AND g.param = '_tag' "
        "AND g.system = ? AND g.code = ?)"
    )
    if conn.dialect.is_postgres:
        rows = await conn.fetch(
            "SELECT t.code, r.res_id FROM unnest(?::text[]) AS m(code) JOIN idx_token t ON t.res_type = 'Patient' "
            "AND t.param = 'identifier' AND t.code = m.code AND t.system = ? "
            f"JOIN resource r ON r.rid = t.rid AND r.is_current AND NOT r.deleted WHERE {tag}",
            [matricules, MATRICULE_SYSTEM, *_LEVEL_TAG],
        )
    else:
        rows = []
        for start in range(0, len(matricules), 500):
            chunk = matricules[start : start + 500]
            rows += await conn.fetch(
                "SELECT t.code, r.res_id FROM idx_token t "
                "JOIN resource r ON r.rid = t.rid AND r.is_current AND NOT r.deleted "
                f"WHERE t.res_type = 'Patient' AND t.param = 'identifier' AND t.code IN ({', '.join('?' * len(chunk))})"
                f" AND t.system = ? AND {tag}",
                [*chunk, MATRICULE_SYSTEM, *_LEVEL_TAG],
            )
    found: dict[str, str] = {}
    for code, res_id in rows:
        found.setdefault(str(code), str(res_id))
    return found


async def _analyze(store: ResourceStore) -> None:
    """PostgreSQL: fresh planner statistics for the tables the batch look-ups read (a register loaded into empty
    tables is otherwise planned as empty: see the MPI's certified import)."""
    if store.database.dialect.is_postgres:
        async with store.database.transaction() as conn:
            await conn.execute("ANALYZE resource, wse_affiliation")


def import_event(result: ImportResult, file_name: str, operator: str, server: str) -> dict[str, Any]:
    """One AuditEvent for an import run (DICOM 110107 Import): who imported which file, with which counts."""
    counts = {
        "read": result.read,
        "created": result.created,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "linked": result.linked,
        "rejected": len(result.rejected),
    }
    return import_audit_event(
        job_system="urn:esante:wse-operation",
        job="affiliation-import",
        command="esante wse import-affiliations",
        file_name=file_name,
        operator=operator,
        server=server,
        counts=counts,
    )
