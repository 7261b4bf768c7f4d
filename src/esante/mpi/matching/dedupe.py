"""Batch duplicate detection over a whole registry (``esante mpi find-duplicates``): pure, no I/O.

The records are prepared once, ``blocking.candidate_pairs`` enumerates each candidate pair once across all rules
(blocks over the cap skipped), and every pair is scored; pairs at or above ``min_probability`` (default: the review
threshold) are returned with their scores for the identity-vigilance queue.

Complexity for n records: preparing O(n); blocking O(rules · n) time and O(rules · n) machine integers of memory
(no set of pairs is kept); scoring O(P) comparisons where P, the number of candidate pairs, is bounded by
Σ_blocks min(b, cap)² / 2 and in practice grows linearly with n (a few pairs per record), since the keys are
selective and over-full blocks are skipped. Memory for the result is O(pairs kept), a small fraction of P.
Scoring dominates (1.2 M synthetic identities: 75 M pairs), so it can be shared among processes (``workers``).
"""

from __future__ import annotations

import multiprocessing
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
    workers: int = 1,
) -> DuplicateReport:
    """Suspected duplicates among ``records``, best first. ``progress`` (if given) is called with the number of
    pairs compared so far every ``progress_every`` pairs, so a CLI can show a progress bar.

    ``workers`` > 1 shares the comparisons among processes (forked: the prepared records are shared, not copied,
    until written), each taking every ``workers``-th block; the parent takes its share and reports progress as its
    share times ``workers``."""
    features = [r if isinstance(r, Features) else prepare(r) for r in records]
    ids = [f.id for f in features]
    if len(set(ids)) != len(ids):
        raise ValueError("record ids must be unique")
    if workers < 1:
        raise ValueError("workers must be at least 1")
    threshold = params.thresholds.review if min_probability is None else min_probability
    job = _Job(features, params, threshold, tuple(rules), cap, workers)
    if workers == 1:
        found, compared, stats = job.run(0, progress, progress_every)
    else:
        global _JOB
        _JOB = job
        context = multiprocessing.get_context("fork")
        try:
            with context.Pool(workers - 1) as pool:
                others = pool.map_async(_run_shard, range(1, workers))
                found, compared, stats = job.run(0, progress, progress_every)
                for more, count, shard_stats in others.get():
                    found += more
                    compared += count
                    for name, emitted in shard_stats.pairs.items():
                        stats.pairs[name] += emitted
        finally:
            _JOB = None
    pairs = [DuplicatePair(ids[i], ids[j], score) if ids[i] < ids[j] else DuplicatePair(ids[j], ids[i], score)
             for i, j, score in found]  # fmt: skip
    pairs.sort(key=lambda p: (-p.score.weight, p.left_id, p.right_id))
    return DuplicateReport(pairs, compared, stats, len(features))


@dataclass(slots=True)
class _Job:
    features: list[Features]
    params: ParameterSet
    threshold: float
    rules: tuple[BlockingRule, ...]
    cap: int
    shards: int

    def run(
        self, shard: int, progress: Callable[[int], None] | None = None, every: int = 100_000
    ) -> tuple[list[tuple[int, int, Score]], int, BlockingStats]:
        scorer = Scorer(self.params)
        stats = BlockingStats()
        found: list[tuple[int, int, Score]] = []
        compared = 0
        features, threshold = self.features, self.threshold
        pairs = candidate_pairs(features, rules=self.rules, cap=self.cap, stats=stats, shard=shard, shards=self.shards)
        for i, j, _ in pairs:
            compared += 1
            vector = compare(features[i], features[j])
            if scorer.probability(vector) >= threshold:
                found.append((i, j, scorer.score_vector(vector)))
            if progress is not None and compared % every == 0:
                progress(compared * self.shards)
        return found, compared, stats


_JOB: _Job | None = None  # the job a forked worker inherits


def _run_shard(shard: int) -> tuple[list[tuple[int, int, Score]], int, BlockingStats]:
    assert _JOB is not None, "workers are forked from find_duplicates"
    return _JOB.run(shard)
