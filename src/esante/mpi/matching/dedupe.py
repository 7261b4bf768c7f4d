"""Batch duplicate detection over a whole registry (``esante mpi find-duplicates``): pure, no I/O.

The records are prepared once, ``blocking.candidate_pairs`` enumerates each candidate pair once across all rules
(blocks over the cap skipped), and every pair is scored; pairs at or above ``min_probability`` (default: the review
threshold) are returned with their scores for the identity-vigilance queue.

Complexity for n records: preparing O(n); blocking O(rules · n) time and O(rules · n) machine integers of memory
(no set of pairs is kept); scoring O(P) comparisons where P, the number of candidate pairs, is bounded by
Σ_blocks min(b, cap)² / 2 and in practice grows linearly with n (a few pairs per record), since the keys are
selective and over-full blocks are skipped. Memory for the result is O(pairs kept), a small fraction of P.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from esante.mpi.matching.blocking import DEFAULT_CAP, DEFAULT_RULES, BlockingRule, BlockingStats, candidate_pairs
from esante.mpi.matching.features import Features, prepare
from esante.mpi.matching.fields import compare
from esante.mpi.matching.parameters import ParameterSet
from esante.mpi.matching.record import IdentityRecord
from esante.mpi.matching.scoring import Score, Scorer


@dataclass(frozen=True, slots=True)
class DuplicatePair:
    left_id: str
    right_id: str
    score: Score


@dataclass(slots=True)
class DuplicateReport:
    pairs: list[DuplicatePair]
    compared: int
    blocking: BlockingStats
    records: int


def find_duplicates(
    records: Iterable[IdentityRecord | Features],
    params: ParameterSet,
    *,
    min_probability: float | None = None,
    rules: Sequence[BlockingRule] = DEFAULT_RULES,
    cap: int = DEFAULT_CAP,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 100_000,
) -> DuplicateReport:
    """Suspected duplicates among ``records``, best first. ``progress`` (if given) is called with the number of
    pairs compared so far every ``progress_every`` pairs, so a CLI can show a progress bar."""
    features = [r if isinstance(r, Features) else prepare(r) for r in records]
    ids = [f.id for f in features]
    if len(set(ids)) != len(ids):
        raise ValueError("record ids must be unique")
    scorer = Scorer(params)
    threshold = params.thresholds.review if min_probability is None else min_probability
    stats = BlockingStats()
    found: list[DuplicatePair] = []
    compared = 0
    for i, j, _ in candidate_pairs(features, rules=rules, cap=cap, stats=stats):
        compared += 1
        vector = compare(features[i], features[j])
        if scorer.probability(vector) >= threshold:
            a, b = sorted((ids[i], ids[j]))
            found.append(DuplicatePair(a, b, scorer.score_vector(vector)))
        if progress is not None and compared % progress_every == 0:
            progress(compared)
    found.sort(key=lambda p: (-p.score.weight, p.left_id, p.right_id))
    return DuplicateReport(found, compared, stats, len(features))
