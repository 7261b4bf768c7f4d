"""The online matching engine of a running platform: certified identities in a :class:`CandidateIndex`, kept
consistent with the database, scored with the active parameter set.

**Loading.** On first use (or at start-up, ``warm``) every current certified identity is read from the store and
indexed; the preparation is CPU work, done in a worker thread so the event loop keeps serving. Look-ups wait for
the load (a platform with 1.2 M identities takes minutes: docs/performance.md).

**Consistency with writes.** Every look-up first *catches up*: the rows written since the last one (storage key
``resource.pk`` above the highest applied — a range of the primary key, a few rows) are read, and their Patient
versions applied in order: a current, active certified identity is (re-)indexed, anything else (a version that is
no longer certified, a merged or deleted identity) is removed. Other processes' writes are therefore seen too
(several workers, the importer), and a write of this process is seen by its next look-up. Keys skipped in that
range belong to transactions still open (they commit later with a smaller key) or rolled back: they are kept as
*gaps* and probed on the next look-ups until they appear or ``SETTLE_MICROS`` has passed.

**Memory.** The load runs with the cyclic garbage collector paused and then freezes what it built (``gc.freeze``):
a million long-lived objects otherwise make every full collection a pause of tens of milliseconds in a look-up.

**Prior.** A look-up asks "which of N certified identities is this person": the prior odds that one given
candidate is the person are 1/N (at least 1/``MIN_PRIOR_POPULATION``, so a tiny test registry does not make weak
agreement look probable). The parameter set's own λ is the duplicate rate of its training data, not this.

**Parameters.** The active set (``ParameterStore``) is re-read at most every ``PARAMETER_REFRESH_SECONDS``; a
new version re-scores from the next look-up (the blocking keys do not depend on it).
"""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass
from typing import Any

from esante.db.engine import Connection, Database
from esante.mpi.match_parameters import ParameterStore
from esante.mpi.matching import (
    Candidate,
    CandidateIndex,
    ParameterSet,
    prepare,
    record_from_fhir,
)
from esante.mpi.registry_records import certified_features, iter_certified

SETTLE_MICROS = 30_000_000  # a write transaction older than this has committed (or failed)
_SCAN_PAGE = 5_000
_MAX_GAP = 100_000
MIN_PRIOR_POPULATION = 10_000
PARAMETER_REFRESH_SECONDS = 5.0
INCOMING_ID = "\x00incoming"


@dataclass
class EngineStats:
    loaded: int = 0
    load_seconds: float = 0.0
    caught_up_rows: int = 0


class MatchingEngine:
    """One per platform process. ``lookup`` is safe to call concurrently (catch-up and index writes are locked)."""

    def __init__(self, database: Database, parameters: ParameterStore) -> None:
        self.database = database
        self.parameters = parameters
        self.stats = EngineStats()
        self._index: CandidateIndex | None = None
        self._params: ParameterSet | None = None
        self._params_read_at = 0.0
        self._seen = 0  # the highest storage key applied
        self._gaps: dict[int, float] = {}  # keys below it not visible yet → when first missed
        self._lock = asyncio.Lock()
        self._population_at_prior = 0

    # -- state --------------------------------------------------------------------------------------------------
    @property
    def parameter_version(self) -> str:
        return self._params.version if self._params is not None else ""

    @property
    def params(self) -> ParameterSet:
        assert self._params is not None, "the engine is not loaded"
        return self._params

    def __len__(self) -> int:
        return len(self._index) if self._index is not None else 0

    async def warm(self) -> None:
        """Load now (start-up) rather than on the first look-up."""
        async with self.database.read() as conn, self._lock:
            await self._ready(conn)

    async def _ready(self, conn: Connection) -> CandidateIndex:
        """The index, loaded on the caller's connection (a hook's transaction may hold the only one: SQLite)."""
        if self._index is None:
            await self._load(conn)
        assert self._index is not None
        return self._index

    async def _load(self, conn: Connection) -> None:
        started = time.perf_counter()
        params = await self.parameters.active(conn)
        index = CandidateIndex(params)
        settled = int(time.time() * 1_000_000) - SETTLE_MICROS  # rows older than this are committed (or never)
        watermark = int(
            await conn.fetchval("SELECT COALESCE(MAX(pk), 0) FROM resource WHERE last_updated < ?", (settled,)) or 0
        )
        collecting = gc.isenabled()
        gc.disable()  # millions of new long-lived objects, no cycles: the collector would only rescan them
        try:
            async for page in iter_certified(conn):
                for features in page:
                    if features.id not in index:
                        index.add(features)
        finally:
            if collecting:
                gc.enable()
        gc.collect()
        gc.freeze()  # the index lives as long as the process: out of the collector's sight (no full-scan pauses)
        self._params, self._params_read_at = params, time.monotonic()
        self._seen = watermark  # rows written since (or while loading) are applied by the first catch-up
        self._index = index
        self._refresh_prior(force=True)
        self.stats.loaded = len(index)
        self.stats.load_seconds = time.perf_counter() - started

    def _refresh_prior(self, *, force: bool = False) -> None:
        """Re-score with the prior 1/N when N moved by more than a tenth since the prior was set."""
        assert self._index is not None and self._params is not None
        population = max(len(self._index), MIN_PRIOR_POPULATION)
        if force or abs(population - self._population_at_prior) * 10 > self._population_at_prior:
            self._index.set_parameters(self._params, prior=1.0 / population)
            self._population_at_prior = population

    # -- consistency --------------------------------------------------------------------------------------------
    async def _catch_up(self, conn: Connection) -> None:
        index = await self._ready(conn)
        now = time.time()
        if time.monotonic() - self._params_read_at > PARAMETER_REFRESH_SECONDS:
            params = await self.parameters.active(conn)
            self._params_read_at = time.monotonic()
            if self._params is None or params.version != self._params.version:
                self._params = params
                self._refresh_prior(force=True)
        patients: list[int] = []
        while True:  # the rows written since the last look-up (all types: the primary key's range, no sort)
            rows = await conn.fetch(
                "SELECT pk, res_type FROM resource WHERE pk > ? ORDER BY pk LIMIT ?", (self._seen, _SCAN_PAGE)
            )
            for pk, res_type in rows:
                if pk > self._seen + 1:  # keys skipped: still-open transactions (or rolled back ones)
                    self._note_gap(self._seen + 1, pk - 1, now)
                self._seen = pk
                if res_type == "Patient":
                    patients.append(pk)
            if len(rows) < _SCAN_PAGE:
                break
        if self._gaps:
            patients += await self._probe_gaps(conn, now)
        if not patients:
            return
        patients.sort()
        for start in range(0, len(patients), _SCAN_PAGE):
            chunk = patients[start : start + _SCAN_PAGE]
            marks = ", ".join("?" * len(chunk))
            versions = await conn.fetch(
                f"SELECT pk, res_id, deleted, content FROM resource WHERE pk IN ({marks}) ORDER BY pk", chunk
            )
            for _pk, res_id, deleted, content in versions:
                features = None if deleted or content is None else certified_features(str(res_id), bytes(content))
                if features is None:
                    index.remove(str(res_id))
                else:
                    index.update(features)
        self.stats.caught_up_rows += len(patients)
        self._refresh_prior()

    def _note_gap(self, first: int, last: int, now: float) -> None:
        if last - first >= _MAX_GAP:  # a sequence jump (e.g. a cache of keys), not open transactions
            return
        for pk in range(first, last + 1):
            self._gaps[pk] = now

    async def _probe_gaps(self, conn: Connection, now: float) -> list[int]:
        """Keys skipped earlier that have become visible since; keys missing for longer than the settle time are
        forgotten (their transaction rolled back, or the key was never used)."""
        found: list[int] = []
        pending = sorted(self._gaps)
        for start in range(0, len(pending), _SCAN_PAGE):
            chunk = pending[start : start + _SCAN_PAGE]
            marks = ", ".join("?" * len(chunk))
            for pk, res_type in await conn.fetch(f"SELECT pk, res_type FROM resource WHERE pk IN ({marks})", chunk):
                del self._gaps[pk]
                if res_type == "Patient":
                    found.append(pk)
        expired = now - SETTLE_MICROS / 1_000_000
        self._gaps = {pk: noticed for pk, noticed in self._gaps.items() if noticed > expired}
        return found

    # -- look-ups -----------------------------------------------------------------------------------------------
    async def lookup(
        self, conn: Connection, patient: dict[str, Any], limit: int, *, min_probability: float | None = None
    ) -> list[Candidate]:
        """The best certified identities for ``patient`` (a FHIR Patient dict) with at least ``min_probability``
        (default: the active review threshold). ``RecordError`` for unreadable traits (the caller answers 400)."""
        record = record_from_fhir(patient, INCOMING_ID)  # never an indexed id: nothing is excluded
        features = prepare(record)
        async with self._lock:
            await self._catch_up(conn)
            assert self._index is not None
            floor = self.params.thresholds.review if min_probability is None else min_probability
            return self._index.lookup(features, limit, min_probability=floor)
