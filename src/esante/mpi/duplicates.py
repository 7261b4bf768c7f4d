"""Batch duplicate detection over the register (``esante mpi find-duplicates``): suspected duplicates among the
certified identities become identity-vigilance review Tasks (reason ``suspected-duplicate``).

The certified identities are streamed out of the store and prepared, the pure engine (``find_duplicates``: blocking
with capped blocks, every candidate pair scored once) keeps the pairs at or above the review threshold, and one
Task per new pair is written: ``focus`` the first identity (ids in order), ``input`` the other with its probability,
grade and per-field agreement. A pair that already has a review Task of this reason — open, or closed by an agent
(dismissed as distinct persons, or merged) — is not opened again, so the job can run every night.

**Prior.** The parameter set's λ is the match rate of the *linkage* it was estimated on (local identities against
the register: most local identities have their person there). Among the pairs of one register, duplicates are
rare: if a share ``duplicate_rate`` of the identities has a duplicate (default 0.1 %), the prior that one given pair
is a duplicate is 2·rate/(N-1) — about 2·10⁻⁹ for 1.2 M identities. Scoring register pairs with the linkage λ
would make namesakes born the same day look like duplicates.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from esante.fhir.model import StoredResource, micros_to_instant
from esante.fhir.store import ResourceStore
from esante.mpi.feed import Candidate
from esante.mpi.match_parameters import ParameterStore
from esante.mpi.matching import DuplicatePair, Features, ParameterSet, find_duplicates
from esante.mpi.registry_records import iter_certified
from esante.mpi.review import REVIEW_CODE, SUSPECTED_DUPLICATE, TASK_SYSTEM, review_task

WRITE_BATCH = 500
DUPLICATE_RATE = 0.001


def duplicate_prior(identities: int, duplicate_rate: float = DUPLICATE_RATE) -> float:
    """The prior that one pair of a register of ``identities`` is a duplicate."""
    if not 0.0 < duplicate_rate < 1.0:
        raise ValueError("the duplicate rate must be between 0 and 1")
    return min(0.5, 2.0 * duplicate_rate / max(identities - 1, 1))


@dataclass
class DuplicateRun:
    identities: int = 0
    compared: int = 0
    suspected: int = 0
    opened: int = 0
    already_reviewed: int = 0
    parameter_version: str = ""
    seconds: dict[str, float] = field(default_factory=dict)


def _as_candidate(pair: DuplicatePair) -> Candidate:
    agreement = {name: level for name, level in pair.score.levels().items() if level != "missing"}
    return Candidate(pair.right_id, pair.score.probability, pair.score.decision, pair.score.grade, agreement)


async def _reviewed_pairs(store: ResourceStore) -> set[tuple[str, str]]:
    """(focus, candidate) of every suspected-duplicate Task ever opened, whatever its status."""
    pairs: set[tuple[str, str]] = set()
    async with store.database.read() as conn:
        rows = await conn.fetch(
            "SELECT r.content FROM resource r JOIN idx_token t ON t.rid = r.rid AND t.param = 'code'"
            " WHERE t.res_type = 'Task' AND t.system = ? AND t.code = ? AND r.is_current AND NOT r.deleted",
            (TASK_SYSTEM, REVIEW_CODE),
        )
    for (content,) in rows:
        task = orjson.loads(bytes(content))
        reasons = {c.get("code") for c in task.get("reasonCode", {}).get("coding", [])}
        if SUSPECTED_DUPLICATE not in reasons:
            continue
        focus = str(task.get("focus", {}).get("reference", "")).removeprefix("Patient/")
        for item in task.get("input", []):
            other = str(item.get("valueReference", {}).get("reference", "")).removeprefix("Patient/")
            pairs.add((focus, other))
    return pairs


async def run_find_duplicates(
    store: ResourceStore,
    *,
    params: ParameterSet | None = None,
    min_probability: float | None = None,
    on_loaded: Callable[[int], None] | None = None,
    on_compared: Callable[[int], None] | None = None,
    dry_run: bool = False,
    duplicate_rate: float = DUPLICATE_RATE,
    workers: int = 1,
) -> DuplicateRun:
    """Find the suspected duplicates and open their review Tasks (none when ``dry_run``)."""
    run = DuplicateRun()
    started = time.perf_counter()
    features: list[Features] = []
    async with store.database.read() as conn:
        params = params or await ParameterStore(store.database).active(conn)
        async for page in iter_certified(conn):
            features.extend(page)
            if on_loaded is not None:
                on_loaded(len(page))
    run.identities, run.parameter_version = len(features), params.version
    loaded = time.perf_counter()
    register_params = dataclasses.replace(params, lambda_=duplicate_prior(len(features), duplicate_rate))
    report = find_duplicates(
        features, register_params, min_probability=min_probability, progress=on_compared, workers=workers
    )
    del features
    run.compared, run.suspected = report.compared, len(report.pairs)
    compared = time.perf_counter()
    known = await _reviewed_pairs(store)
    fresh = [p for p in report.pairs if (p.left_id, p.right_id) not in known]
    run.already_reviewed = run.suspected - len(fresh)
    if not dry_run:
        for start in range(0, len(fresh), WRITE_BATCH):
            async with store.database.transaction() as conn:
                session = store.session(conn)
                now = int(time.time() * 1_000_000)
                for pair in fresh[start : start + WRITE_BATCH]:
                    focus = StoredResource(0, "Patient", pair.left_id, 0, now, False, None)
                    task = review_task(focus, [_as_candidate(pair)], micros_to_instant(now), SUSPECTED_DUPLICATE)
                    await session.create(task, client_id=False)
                await session.flush()
            run.opened += len(fresh[start : start + WRITE_BATCH])
    run.seconds = {
        "load": round(loaded - started, 2),
        "compare": round(compared - loaded, 2),
        "write": round(time.perf_counter() - compared, 2),
    }
    return run
