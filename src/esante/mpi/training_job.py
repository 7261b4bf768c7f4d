"""Estimating a parameter set from the platform's own registry (``esante mpi train``): EM, no labels.

The MPI's online task is linking establishments' local identities to certified ones, so when enough local
identities exist (``MIN_LOCAL``) the parameters are estimated on that linkage (a seeded sample of certified
identities x the local identities). A young platform without feeds may estimate them on the register itself
(deduplication, asked for explicitly): EM learns m from the true pairs among the candidates, and a clean register
has almost none, so such a set is stored for inspection and never activated automatically. The CLI stores a
linkage set under its content version and, unless ``--no-activate``, activates it: every process scores with it
from its next look-ups. Thresholds are kept from the set in use unless given.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from esante.fhir.store import ResourceStore
from esante.mpi.match_parameters import ParameterStore
from esante.mpi.matching import Features, ParameterSet, Thresholds, estimate_parameters
from esante.mpi.model import IdentityLevel
from esante.mpi.registry_records import iter_certified

MIN_LOCAL = 500


@dataclass
class TrainingRun:
    params: ParameterSet
    mode: str  # linkage | deduplication
    certified: int
    local: int


def _sample(records: list[Features], size: int, rng: random.Random) -> list[Features]:
    return records if len(records) <= size else rng.sample(records, size)


async def train_from_registry(
    store: ResourceStore,
    *,
    sample: int = 20_000,
    seed: int = 0,
    thresholds: Thresholds | None = None,
    allow_deduplication: bool = False,
) -> TrainingRun:
    rng = random.Random(seed)
    certified: list[Features] = []
    local: list[Features] = []
    async with store.database.read() as conn:
        current = await ParameterStore(store.database).active(conn)
        async for page in iter_certified(conn):
            certified.extend(page)
        for level in (IdentityLevel.VALIDATED, IdentityLevel.PROVISIONAL):
            async for page in iter_certified(conn, level=level):
                local.extend(page)
    if len(certified) < 2:
        raise ValueError("the register holds fewer than two certified identities: nothing to learn from")
    chosen_local = _sample(local, sample, rng)
    if len(chosen_local) >= MIN_LOCAL:
        params = estimate_parameters(
            _sample(certified, sample, rng), chosen_local, seed=seed, thresholds=thresholds or current.thresholds
        )
        mode = "linkage"
    elif allow_deduplication:
        params = estimate_parameters(
            _sample(certified, sample, rng), seed=seed, thresholds=thresholds or current.thresholds
        )
        mode = "deduplication"
    else:
        raise ValueError(
            f"only {len(local)} local identities (at least {MIN_LOCAL} are needed to learn from the linkage the MPI "
            "performs); --deduplication estimates on the register itself, for inspection only"
        )
    params.training["registry"] = {"mode": mode, "certified": len(certified), "local": len(local), "sample": sample}
    return TrainingRun(params, mode, len(certified), len(local))
