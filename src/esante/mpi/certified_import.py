"""Bulk import of certified identities from the national register (``esante mpi import FILE --certified``).

Input: NDJSON (one FHIR Patient per line) or CSV (documented columns, see :mod:`esante.mpi.sources`). Each identity
must carry a valid matricule (``urn:oid:1.3.182.4.4``: 13 digits with its Luhn and Verhoeff check digits; the old
11-digit form is accepted and flagged ``old-matricule``). The import is **idempotent**, keyed on the matricule: an
identity already certified is updated when its content changed (a new version; unchanged ones are left alone) and
keeps its id and eSanté patient identifier; a new one is created, tagged ``certified``, and given an eSanté patient
identifier (``urn:oid:1.3.182.2.4.2``) — any eSanté identifier in the file is ignored: only the MPI assigns them.
Rejected lines are reported with their line number and the reason; the others are imported.

Batches of ``batch_size`` identities are written in one transaction each, so an interrupted import keeps what it
finished and can simply be run again.

Speed (bench/mpi_import.py, docs/performance.md): most of the work per identity is pure CPU — parsing, FHIR
validation, shaping and the extraction of its search-index rows — and is done by :func:`prepare_chunk`, a pure
function run in worker processes on PostgreSQL (``workers``), chunk after chunk, while the main process writes
the previous batch: it looks the matricules up, keeps the eSanté identifiers of known identities, checks the
proposed ones against the ledger and hands the rows to the store, which COPYs a bulk of creates. SQLite (one
writer, small registers) prepares in-process: same function, no pool.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import time
import uuid
from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from esante.db.engine import Connection
from esante.fhir.errors import FhirError
from esante.fhir.index_rows import IndexRows
from esante.fhir.indexing import extract_index_rows
from esante.fhir.model import StoredResource
from esante.fhir.store import ResourceStore
from esante.fhir.validation import validate_resource
from esante.identifiers.esante_id import new_esante_id
from esante.identifiers.matricule import MatriculeError, parse_matricule
from esante.import_report import import_audit_event
from esante.mpi.model import ESANTE_ID_SYSTEM, FLAG_SYSTEM, MATRICULE_SYSTEM, IdentityLevel, level_tag
from esante.mpi.people import level_of
from esante.mpi.sources import parse_line

# (line number, Patient, an unparsed NDJSON line, or the reason the line is unreadable)
Source = Iterable[tuple[int, dict[str, Any] | bytes | str]]

CHUNK = 250  # identities per worker task: small enough to start writing early and keep the workers even
POOL_AFTER = 2_000  # lines prepared in-process before the worker processes start (small files never start them)
ANALYZE_FIRST = 20_000  # identities created by a run before the first ANALYZE (then at each doubling): _analyze


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
    rejected: list[Rejection] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return (self.read - len(self.rejected)) / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Prepared:
    """One valid identity, shaped as the MPI stores it if it is new: with a *proposed* eSanté identifier
    (``identifier[1]``; the writer checks it against the ledger), a resource id, and the index rows of exactly
    this body (None when the matricule was known at the start: most likely an unchanged identity)."""

    line: int
    matricule: str
    body: dict[str, Any]
    res_id: str
    index_rows: IndexRows | None


def prepare(resource: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Check one identity and shape it as the MPI stores it; returns (matricule, Patient). Raises ValueError."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
        raise ValueError("not a FHIR Patient")
    try:
        validate_resource(resource, expected_type="Patient")
    except FhirError as error:
        raise ValueError("; ".join(issue.diagnostics for issue in error.issues)) from error
    matricules = [i for i in resource.get("identifier", []) if i.get("system") == MATRICULE_SYSTEM]
    if len(matricules) != 1 or not isinstance(matricules[0].get("value"), str):
        raise ValueError(f"a certified identity needs exactly one matricule ({MATRICULE_SYSTEM})")
    try:
        matricule = parse_matricule(matricules[0]["value"])
    except MatriculeError as error:
        raise ValueError(f"invalid matricule: {error}") from error
    body = {k: v for k, v in resource.items() if k not in ("id", "meta", "text")}
    identifiers = [
        i for i in resource.get("identifier", []) if i.get("system") not in (MATRICULE_SYSTEM, ESANTE_ID_SYSTEM)
    ]
    body["identifier"] = [{"use": "official", "system": MATRICULE_SYSTEM, "value": matricule.value}, *identifiers]
    tags = [level_tag(IdentityLevel.CERTIFIED)]
    if matricule.old:
        tags.append({"system": FLAG_SYSTEM, "code": "old-matricule"})
    body["meta"] = {"tag": tags}
    return matricule.value, body


def _esante_identifier(value: str) -> dict[str, str]:
    return {"use": "secondary", "system": ESANTE_ID_SYSTEM, "value": value}


def prepare_chunk(
    items: list[tuple[int, dict[str, Any] | bytes | str]], known: Sequence[int] = ()
) -> list[Prepared | Rejection]:
    """The CPU work of a chunk of lines, pure (no I/O): run in worker processes.

    Each line is parsed (NDJSON bytes), checked and shaped (:func:`prepare`), given a proposed eSanté identifier
    and resource id and, unless its matricule is in ``known`` (sorted matricules as integers: the register at the
    start of the run), its search-index rows extracted as :meth:`StoreSession.create` would. Identities that turn
    out to exist already drop the proposals and go through the store's ordinary update path; new ones without
    rows have them extracted by the store.
    """
    out: list[Prepared | Rejection] = []
    for line, item in items:
        try:
            parsed = parse_line(item) if isinstance(item, bytes) else item
            if isinstance(parsed, str):
                raise ValueError(parsed)
            matricule, body = prepare(parsed)
        except ValueError as error:
            out.append(Rejection(line, str(error)))
            continue
        body["identifier"].insert(1, _esante_identifier(new_esante_id()))
        rows = None if _contains(known, int(matricule)) else extract_index_rows(body)
        out.append(Prepared(line, matricule, body, str(uuid.uuid4()), rows))
    return out


def _contains(ordered: Sequence[int], value: int) -> bool:
    at = bisect_left(ordered, value)
    return at < len(ordered) and ordered[at] == value


# -- worker processes: the known matricules are handed over once; results travel as JSON (pickle: 4x slower)
_known: Sequence[int] = ()


def _init_worker(known: Sequence[int]) -> None:
    global _known
    _known = known
    gc.set_threshold(50_000, *gc.get_threshold()[1:])  # as in the writer (CertifiedImporter.run)
    _die_with_parent()


def _die_with_parent() -> None:
    """Linux: a worker is terminated with the importer (a forked worker holds its own end of the task pipe, so it
    would otherwise outlive a killed importer, waiting for work forever)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _prepare_packed(items: list[tuple[int, dict[str, Any] | bytes | str]]) -> bytes:
    packed: list[Any] = []
    for entry in prepare_chunk(items, _known):
        if isinstance(entry, Rejection):
            packed.append([entry.line, entry.reason])
        else:
            rows = entry.index_rows
            kinds = None if rows is None else [getattr(rows, kind) for kind in _ROW_KINDS]
            packed.append([entry.line, entry.matricule, entry.body, entry.res_id, kinds])
    return orjson.dumps(packed)


def _unpack(data: bytes) -> list[Prepared | Rejection]:
    out: list[Prepared | Rejection] = []
    for item in orjson.loads(data):
        if len(item) == 2:
            out.append(Rejection(item[0], item[1]))
        else:
            line, matricule, body, res_id, kinds = item
            rows = None if kinds is None else IndexRows(**dict(zip(_ROW_KINDS, kinds, strict=True)))
            out.append(Prepared(line, matricule, body, res_id, rows))
    return out


_ROW_KINDS = ("string", "token", "date", "number", "quantity", "reference", "uri")


def _comparable(content: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in content.get("meta", {}).items() if k not in ("versionId", "lastUpdated")}
    return {**{k: v for k, v in content.items() if k not in ("meta", "id")}, "meta": meta}


def _chunks(source: Source, size: int) -> Iterator[list[tuple[int, dict[str, Any] | bytes | str]]]:
    chunk: list[tuple[int, dict[str, Any] | bytes | str]] = []
    for item in source:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _warm_up() -> None:
    """Load the validation and indexing definitions once, before forking, so every worker starts warm."""
    sample = {"resourceType": "Patient", "identifier": [{"system": MATRICULE_SYSTEM, "value": "1893120105732"}]}
    prepare_chunk([(0, sample)])


def default_workers(store: ResourceStore) -> int:
    """PostgreSQL: as many preparation processes as cores (the main process mostly waits for the database);
    SQLite: none (in-process)."""
    if not store.database.dialect.is_postgres:
        return 0
    return max(1, min(4, os.cpu_count() or 1))


class CertifiedImporter:
    def __init__(self, store: ResourceStore, batch_size: int = 500, workers: int | None = None) -> None:
        self.store = store
        self.batch_size = batch_size
        self.workers = default_workers(store) if workers is None else workers

    async def run(self, source: Source, progress: Callable[[int], None] | None = None) -> ImportResult:
        result = ImportResult()
        started = time.perf_counter()
        # a bulk of short-lived containers: the default cyclic-GC threshold (700 allocations) ran a collection
        # every few identities (a third of the writer's time); raised for the run, restored after
        thresholds = gc.get_threshold()
        gc.set_threshold(max(thresholds[0], 50_000), *thresholds[1:])
        pipeline = _Pipeline(self, result, progress)
        try:
            await pipeline.run(source)
        finally:
            gc.set_threshold(*thresholds)
            pipeline.close()
        if progress is not None:
            progress(result.read)
        result.seconds = time.perf_counter() - started
        return result

    async def _start_pool(self) -> Executor:
        known = await _known_matricules(self.store)
        _warm_up()
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        return ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker, initargs=(known,))

    async def _write(self, batch: list[Prepared], result: ImportResult) -> None:
        async with self.store.database.transaction() as conn:
            session = self.store.session(conn)
            # a lookup of many values: planned with them (a generic plan filtered every matricule of the register)
            await session.plan_searches_per_execution()
            existing = await _certified_by_matricule(conn, [p.matricule for p in batch])
            proposed = [p.body["identifier"][1]["value"] for p in batch if p.matricule not in existing]
            taken = await _assigned(conn, proposed)
            new: list[tuple[str, StoredResource]] = []
            await session.reserve_rids(len(proposed))
            for entry in batch:
                body, matricule = entry.body, entry.matricule
                current = existing.get(matricule)
                if current is None:
                    rows: IndexRows | None = entry.index_rows
                    esante_id = body["identifier"][1]["value"]
                    if esante_id in taken:  # in the ledger, or given a moment ago in this batch: draw another
                        esante_id = (await _fresh_ids(conn, 1, taken))[0]
                        body["identifier"][1] = _esante_identifier(esante_id)
                        rows = None  # the store extracts the rows again
                    taken.add(esante_id)
                    stored = await session.create(body, res_id=entry.res_id, client_id=False, index_rows=rows)
                    new.append((esante_id, stored))
                    existing[matricule] = stored
                    result.created += 1
                    continue
                assert current.content is not None
                old = orjson.loads(current.content)
                kept = [i for i in old.get("identifier", []) if i.get("system") == ESANTE_ID_SYSTEM]
                body["identifier"][1:2] = kept  # the proposal gives way to the identifier it already has
                body["id"] = current.res_id
                if _comparable(body) == _comparable(old):
                    result.unchanged += 1
                    continue
                existing[matricule] = await session.update(body, current)
                result.updated += 1
            await session.flush()
            if new:
                now = int(time.time())
                await conn.copy_rows(
                    "mpi_esante_id",
                    ("esante_id", "res_id", "assigned_at"),
                    [(esante_id, stored.res_id, now) for esante_id, stored in new],
                )


class _Pipeline:
    """Chunks go to the workers a few ahead of the writer; results are consumed in line order.

    The first :data:`POOL_AFTER` lines are prepared in-process (a small file is done before a pool would have
    started); the worker processes start only for a bigger file, and only on PostgreSQL (``workers``).
    """

    def __init__(self, importer: CertifiedImporter, result: ImportResult, progress: Callable[[int], None] | None):
        self.importer = importer
        self.result = result
        self.progress = progress
        self.pool: Executor | None = None
        self.in_flight: deque[tuple[int, Future[bytes] | list[Prepared | Rejection]]] = deque()
        self.batch: list[Prepared] = []
        self.done = 0
        self.analyze_at = ANALYZE_FIRST
        self.analyzed = 0  # identities created by the run when it last analysed

    async def run(self, source: Source) -> None:
        importer = self.importer
        chunk_size = min(CHUNK, importer.batch_size)
        # enough chunks ahead to keep the workers busy while a batch is written (the writer waits on the database)
        ahead = 2 * importer.workers + 3 * -(-importer.batch_size // chunk_size)
        for chunk in _chunks(source, chunk_size):
            self.result.read += len(chunk)
            if self.pool is None and importer.workers > 0 and self.result.read > POOL_AFTER:
                self.pool = await importer._start_pool()
            if self.pool is None:
                self.in_flight.append((len(chunk), prepare_chunk(chunk)))
                await self._consume()
                continue
            self.in_flight.append((len(chunk), self.pool.submit(_prepare_packed, chunk)))
            if len(self.in_flight) >= ahead:
                await self._consume()
        while self.in_flight:
            await self._consume()
        if self.batch:
            await importer._write(self.batch, self.result)
        if self.result.created >= ANALYZE_FIRST and self.result.created > self.analyzed:
            await _analyze(importer.store)  # leave the statistics right for the searches that follow

    async def _consume(self) -> None:
        count, pending = self.in_flight.popleft()
        prepared = _unpack(await asyncio.wrap_future(pending)) if isinstance(pending, Future) else pending
        for entry in prepared:
            if isinstance(entry, Rejection):
                self.result.rejected.append(entry)
            else:
                self.batch.append(entry)
        self.done += count
        if len(self.batch) >= self.importer.batch_size:
            await self.importer._write(self.batch, self.result)
            self.batch = []
            if self.result.created >= self.analyze_at:
                await _analyze(self.importer.store)
                self.analyzed = self.result.created
                self.analyze_at = 2 * self.result.created
            if self.progress is not None:
                self.progress(self.done)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


async def _analyze(store: ResourceStore) -> None:
    """PostgreSQL: refresh the planner statistics of the tables the batch lookups read.

    A register loaded into empty tables is otherwise planned as if it were still empty (until autovacuum analyzes
    it — and it may be off): the matricule lookup then filtered every identifier of the register for each batch
    (1.2 s a batch at 340,000 identities, the import slowing to 800/s) and the ledger check scanned the ledger;
    with statistics they take 10 and 1 ms. Run when the identities created by the run double (20,000, 40,000, …:
    seven for a national register) and at the end; 0.2 to 1 s each.
    """
    if store.database.dialect.is_postgres:
        async with store.database.transaction() as conn:
            await conn.execute("ANALYZE resource, idx_token, mpi_esante_id")


async def _known_matricules(store: ResourceStore) -> Sequence[int]:
    """Every matricule of the register (sorted integers, 8 bytes each): a hint for the workers, which skip the
    index extraction of identities that most likely exist (a re-import); the writer's lookup decides."""
    async with store.database.read() as conn:
        rows = await conn.fetch(
            "SELECT code FROM idx_token WHERE res_type = 'Patient' AND param = 'identifier' AND system = ?",
            (MATRICULE_SYSTEM,),
        )
    return array("q", sorted({int(row[0]) for row in rows if str(row[0]).isdigit()}))


async def _certified_by_matricule(conn: Connection, matricules: list[str]) -> dict[str, StoredResource]:
    """The current certified identities holding these matricules.

    One indexed lookup on the identifier (``ix_idx_token_value``); the level is checked on the loaded content: a
    condition on the ``_tag`` index in the same statement made PostgreSQL hash every certified identity of the
    register for each batch (0.5 s a batch at 20,000 identities). Its plan needs current statistics: see
    :func:`_analyze`.
    """
    from esante.fhir.store import _SELECT_COLUMNS, row_to_stored

    unique = sorted(set(matricules))
    columns = ", ".join("r." + c.strip() for c in _SELECT_COLUMNS.split(","))
    if conn.dialect.is_postgres:  # one index probe per value (an IN list may be planned as a filter of a range)
        rows = await conn.fetch(
            f"SELECT t.code, {columns} FROM unnest(?::text[]) AS m(code) JOIN idx_token t ON t.res_type = 'Patient'"
            " AND t.param = 'identifier' AND t.code = m.code AND t.system = ?"
            " JOIN resource r ON r.rid = t.rid AND r.is_current AND NOT r.deleted",
            [unique, MATRICULE_SYSTEM],
        )
    else:
        marks = ", ".join("?" * len(unique))
        rows = await conn.fetch(
            f"SELECT t.code, {columns} FROM idx_token t"
            " JOIN resource r ON r.rid = t.rid AND r.is_current AND NOT r.deleted"
            f" WHERE t.res_type = 'Patient' AND t.param = 'identifier' AND t.code IN ({marks}) AND t.system = ?",
            [*unique, MATRICULE_SYSTEM],
        )
    found: dict[str, StoredResource] = {}
    for row in rows:
        stored = row_to_stored(row[1:])
        if stored.content is not None and level_of(orjson.loads(stored.content)) is IdentityLevel.CERTIFIED:
            found[str(row[0])] = stored
    return found


async def _assigned(conn: Connection, candidates: list[str]) -> set[str]:
    """Which of these eSanté identifiers the ledger already holds (the writer also avoids those it just gave)."""
    unique = sorted(set(candidates))
    if not unique:
        return set()
    marks = ", ".join("?" * len(unique))
    rows = await conn.fetch(f"SELECT esante_id FROM mpi_esante_id WHERE esante_id IN ({marks})", unique)
    return {str(row[0]) for row in rows}


async def _fresh_ids(conn: Connection, count: int, avoid: set[str] | None = None) -> list[str]:
    """``count`` eSanté patient identifiers never assigned before (nor in ``avoid``), checked in one statement
    (the ledger's primary key is the final guard)."""
    chosen: set[str] = set()
    while len(chosen) < count:
        candidates = {new_esante_id() for _ in range(count - len(chosen))} - chosen - (avoid or set())
        if not candidates:
            continue
        marks = ", ".join("?" * len(candidates))
        taken = await conn.fetch(
            f"SELECT esante_id FROM mpi_esante_id WHERE esante_id IN ({marks})", sorted(candidates)
        )
        chosen |= candidates - {str(row[0]) for row in taken}
    return sorted(chosen)


def import_event(result: ImportResult, file_name: str, operator: str, settings: Any) -> dict[str, Any]:
    """One AuditEvent for an import run (DICOM 110107 Import): who imported what file, with what outcome."""
    counts = {
        "read": result.read,
        "created": result.created,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "rejected": len(result.rejected),
    }
    return import_audit_event(
        job_system="urn:esante:mpi-operation",
        job="certified-import",
        command="esante mpi import",
        file_name=file_name,
        operator=operator,
        server=settings.effective_audience,
        counts=counts,
    )
