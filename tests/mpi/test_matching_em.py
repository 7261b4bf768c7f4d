"""EM: recovery of known parameters, smoothing, training on a labelled synthetic population, determinism."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from esante.mpi.matching import CandidateIndex, ParameterSet, estimate_parameters
from esante.mpi.matching.em import run_em
from tests.mpi.matching_support import synthetic_linkage, trained_parameters

TRUE_M = [[0.85, 0.1, 0.05], [0.9, 0.07, 0.03], [0.7, 0.2, 0.1]]
TRUE_U = [[0.05, 0.15, 0.8], [0.02, 0.08, 0.9], [0.1, 0.3, 0.6]]


def draw(row: list[float], rng: random.Random) -> int:
    x, total = rng.random(), 0.0
    for level, p in enumerate(row):
        total += p
        if x < total:
            return level
    return len(row) - 1


def sample(n: int, lambda_: float, seed: int) -> Counter[tuple[int, ...]]:
    rng = random.Random(seed)
    patterns: Counter[tuple[int, ...]] = Counter()
    for _ in range(n):
        table = TRUE_M if rng.random() < lambda_ else TRUE_U
        vector = tuple(3 if rng.random() < 0.05 else draw(row, rng) for row in table)  # 5 % missing
        patterns[vector] += 1
    return patterns


def test_em_recovers_a_known_mixture() -> None:
    patterns = sample(40_000, 0.2, seed=1)
    start_m = [[0.6, 0.3, 0.1]] * 3
    start_u = [[1 / 3, 1 / 3, 1 / 3]] * 3
    result = run_em(patterns, [3, 3, 3], [True] * 3, start_m, start_u, 0.5)
    assert result.converged
    assert result.lambda_ == pytest.approx(0.2, abs=0.01)
    for estimated, true in ((result.m, TRUE_M), (result.u, TRUE_U)):
        for row, true_row in zip(estimated, true, strict=True):
            assert row == pytest.approx(true_row, abs=0.02)
    assert start_m[0] == [0.6, 0.3, 0.1]  # inputs untouched


def test_inactive_fields_are_left_as_given() -> None:
    patterns = sample(5_000, 0.3, seed=2)
    m = [[0.6, 0.3, 0.1]] * 3
    result = run_em(patterns, [3, 3, 3], [True, True, False], m, [[1 / 3] * 3] * 3, 0.5)
    assert result.m[2] == [0.6, 0.3, 0.1]


def test_pseudo_counts_keep_unseen_levels_above_zero() -> None:
    patterns = Counter({(0, 0): 500, (2, 2): 500})  # level 1 never seen
    result = run_em(patterns, [3, 3], [True, True], [[0.8, 0.1, 0.1]] * 2, [[0.1, 0.1, 0.8]] * 2, 0.5)
    assert min(result.m[0]) > 1e-4
    bare = run_em(patterns, [3, 3], [True, True], [[0.8, 0.1, 0.1]] * 2, [[0.1, 0.1, 0.8]] * 2, 0.5, pseudo_count=0.0)
    assert min(bare.m[0]) < 1e-6


def test_empty_data_changes_nothing() -> None:
    result = run_em(Counter(), [3], [True], [[0.5, 0.3, 0.2]], [[0.2, 0.3, 0.5]], 0.1)
    assert (result.m, result.lambda_, result.iterations) == ([[0.5, 0.3, 0.2]], 0.1, 0)


def test_training_on_a_labelled_synthetic_population() -> None:
    """Unsupervised EM on certified identities x establishment feeds, then checked against the truth."""
    certified, local, truth = synthetic_linkage()
    params = trained_parameters()
    report = params.training
    assert report["mode"] == "linkage" and report["records"] == [len(certified), len(local)]
    learned = [r for r in report["rules"].values() if r.get("pairs")]
    assert len(learned) >= 8 and all(r["converged"] for r in learned)
    # λ: about one certified identity per local one (the feeds' persons are in the register)
    assert params.lambda_ * len(certified) * len(local) == pytest.approx(len(truth), rel=0.1)
    weights = {f.name: dict(zip(f.levels, f.weights(), strict=False)) for f in params.fields}
    for name in ("given", "family", "birth_date", "matricule"):
        assert weights[name]["exact"] > 5 > weights[name]["different"]
    assert weights["matricule"]["old_form"] >= 0 and weights["birth_date"]["transposed"] >= 0  # rare: 0 or more
    index = CandidateIndex(params)
    index.add_many(certified)
    linked = {}
    for record in local:
        best = index.lookup(record, limit=1, min_probability=params.thresholds.auto_link)
        if best:
            linked[record.id] = best[0].record_id
    correct = sum(1 for rid, target in linked.items() if truth.get(rid) == target)
    precision, recall = correct / len(linked), correct / len(truth)
    assert precision >= 0.995 and recall >= 0.98, (precision, recall)


def test_training_is_deterministic_for_a_seed() -> None:
    certified, local, _ = synthetic_linkage()
    first = estimate_parameters(certified[:1500], local[:300], seed=5, created="x", random_pairs=20_000)
    second = estimate_parameters(certified[:1500], local[:300], seed=5, created="x", random_pairs=20_000)
    assert first.to_json() == second.to_json()
    assert ParameterSet.from_json(first.to_json()).version == first.version


def test_deduplication_mode() -> None:
    certified, local, truth = synthetic_linkage()
    records = certified[:1500] + [r for r in local if truth.get(r.id, "P9") < "P0001500"]
    params = estimate_parameters(records, seed=0, random_pairs=20_000)
    assert params.training["mode"] == "deduplication"
    expected = sum(1 for r in local if truth.get(r.id, "P9") < "P0001500")
    assert params.training["expected_matches"] == pytest.approx(expected, rel=0.25)
