"""Bounded comparison: a look-up drops a candidate early only when it could not reach the floor anyway, and
returns exactly what full scoring would."""

from __future__ import annotations

from esante.mpi.matching import CandidateIndex, Scorer, prepare
from esante.mpi.matching.blocking import candidate_pairs
from esante.mpi.matching.fields import compare, compare_bounded
from tests.mpi.matching_support import synthetic_linkage, trained_parameters


def test_bounded_comparison_is_exact_or_below_the_floor() -> None:
    certified, local, _truth = synthetic_linkage()
    left = [prepare(r) for r in certified]
    right = [prepare(r) for r in local]
    scorer = Scorer(trained_parameters(), 1 / 1_200_000)
    dropped = kept = 0
    for floor_probability in (0.1, 0.5, 0.95):
        floor = scorer.weight_floor(floor_probability)
        for i, j, _ in candidate_pairs(left, right):
            full = compare(left[i], right[j])
            bounded = compare_bounded(left[i], right[j], scorer.table, floor, scorer.best_rest)
            if bounded is None:
                dropped += 1
                assert scorer.weight(full) < floor
            else:
                kept += 1
                assert bounded == full
    assert dropped and kept, "both paths exercised"


def test_lookups_return_what_full_scoring_returns() -> None:
    certified, local, _truth = synthetic_linkage()
    params = trained_parameters()
    index = CandidateIndex(params, prior=1 / 1_200_000)
    index.add_many(certified)
    scorer = Scorer(params, 1 / 1_200_000)
    for record in local[:300]:
        features = prepare(record)
        got = index.lookup(features, limit=5, min_probability=0.1)
        expected = sorted(
            (-s.weight, cid)
            for cid in index.candidate_ids(features)
            if (s := scorer.score(features, index.get(cid))).probability >= 0.1  # type: ignore[arg-type]
        )[:5]
        assert [(-c.score.weight, c.record_id) for c in got] == expected
