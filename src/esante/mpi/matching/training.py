"""Estimate a parameter set from the data themselves (no labels): u from random pairs, m by EM, λ from both.

1. **u** (how often two *different* people agree at each level) from random pairs, which are almost all
   non-matches. The ``exact`` level is rare among random pairs (two random people share a birth date about once in
   30,000 pairs), so its u is computed exactly from the value frequencies (Σ n_v(n_v-1) / n(n-1) over the whole
   set, divided by the share of random pairs where the field is present) and the sample gives the other levels.
2. **m** (how often the *same* person's records agree at each level) by EM, rule by rule: within one blocking rule's
   blocks, the fields the rule's key constrains agree by construction, so EM learns from the other fields only
   (u is re-estimated there as a nuisance: blocked non-matches are not random pairs). Each field's m is the average
   of the rules that could learn it, weighted by their expected number of matches.
3. **λ** by EM over all candidate pairs with m and u fixed: the expected number of matches among them, divided by
   the number of possible pairs (n(n-1)/2, or n·n' for a linkage).
4. **u corrected for the matches**: pairs drawn from the whole set include the true matches, and for near-unique
   traits (a full address, a birth date) those are most of the agreements; u = (u_all - λ·m) / (1 - λ), then
   λ again (a few rounds).

Levels never observed among the candidate pairs (partial dates in a data set that has none) get m = u: weight 0,
as the data say nothing about them. Everything is seeded: the same records and seed give the same parameter set.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any

from esante.mpi.matching.blocking import DEFAULT_CAP, DEFAULT_RULES, BlockingRule, BlockingStats, candidate_pairs
from esante.mpi.matching.em import Table, run_em
from esante.mpi.matching.features import Features, prepare
from esante.mpi.matching.fields import FIELD_NAMES, FIELDS, compare
from esante.mpi.matching.parameters import FieldParameters, ParameterSet, Thresholds
from esante.mpi.matching.record import IdentityRecord

SIZES = tuple(len(f.levels) - 1 for f in FIELDS)
EXACT = 0  # every field's first level is its exact agreement
MIN_OBSERVED = 3
CORRECTIONS = 3  # rounds of (λ given m, u) then (u given λ, m): the estimates settle in two or three


def _present(value: object) -> Hashable | None:
    return value if value else None


EXACT_KEYS: dict[str, Callable[[Features], Hashable | None]] = {
    "given": lambda f: f.given.compact if f.given else None,
    "family": lambda f: f.family.compact if f.family else None,
    "birth_name": lambda f: f.birth.compact if f.birth else None,
    "birth_date": lambda f: f.birth_digits if f.birth_date and f.birth_date[1] and f.birth_date[2] else None,
    "sex": lambda f: f.sex,
    "birth_place": lambda f: f.birth_place.compact if f.birth_place else None,
    "address": lambda f: (
        (f.street.compact, f.house, f.postal, f.city.compact) if f.street and f.house and f.postal and f.city else None
    ),
    "address_complement": lambda f: f.complement.compact if f.complement else None,
    "region": lambda f: _present((f.state, f.country) if f.state or f.country else None),
    "matricule": lambda f: f.matricule,
}


def estimate_parameters(
    records: Sequence[IdentityRecord] | Sequence[Features],
    other: Sequence[IdentityRecord] | Sequence[Features] | None = None,
    *,
    rules: Sequence[BlockingRule] = DEFAULT_RULES,
    cap: int = DEFAULT_CAP,
    random_pairs: int = 100_000,
    max_pairs_per_rule: int = 200_000,
    thresholds: Thresholds | None = None,
    seed: int = 0,
    max_iterations: int = 200,
    created: str | None = None,
) -> ParameterSet:
    """Learn a parameter set from ``records`` (deduplication: pairs within them) or from ``records`` x ``other``
    (linkage of two sets, each free of duplicates). Cost: O(random_pairs + rules · max_pairs_per_rule) comparisons
    plus O(rules · n) for blocking, whatever n is (samples are capped)."""
    left = _features(records)
    right = _features(other) if other is not None else None
    rng = random.Random(seed)
    u, present_share = _random_u(left, right, random_pairs, rng)
    m_sum = [[0.0] * size for size in SIZES]
    m_weight = [0.0] * len(FIELDS)
    rule_report: dict[str, Any] = {}
    for rule in rules:
        patterns, total, sampled = _rule_patterns(left, right, rule, cap, max_pairs_per_rule, rng)
        if sampled == 0:
            rule_report[rule.name] = {"pairs": 0}
            continue
        active = [name not in rule.fields for name in FIELD_NAMES]
        result = run_em(patterns, SIZES, active, _initial_m(), u, 0.5, max_iterations=max_iterations)
        matches = result.lambda_ * total
        rule_report[rule.name] = {
            "pairs": total,
            "sampled": sampled,
            "expected_matches": round(matches, 1),
            "iterations": result.iterations,
            "converged": result.converged,
        }
        for f, on in enumerate(active):
            if on and matches > 0:
                m_weight[f] += matches
                for level in range(SIZES[f]):
                    m_sum[f][level] += matches * result.m[f][level]
    m = [[value / m_weight[f] for value in m_sum[f]] if m_weight[f] > 0 else list(u[f]) for f in range(len(FIELDS))]
    union, union_total, _, stats = _union_patterns(left, right, rules, cap, max_pairs_per_rule * 2, rng)
    observed = [[0] * size for size in SIZES]
    for vector, count in union.items():
        for f, level in enumerate(vector):
            if level < SIZES[f]:
                observed[f][level] += count
    for f in range(len(FIELDS)):
        for level in range(SIZES[f]):
            if observed[f][level] < MIN_OBSERVED:
                m[f][level] = u[f][level]
        norm = sum(m[f])
        m[f] = [value / norm for value in m[f]]
    possible = max(len(left) * (len(left) - 1) // 2 if right is None else len(left) * len(right), 1)
    observed_u = u
    for _ in range(CORRECTIONS):
        fitted = run_em(union, SIZES, [True] * len(FIELDS), m, u, 0.01, fix_m=True, fix_u=True)
        expected_matches = fitted.lambda_ * union_total
        lambda_ = min(max(expected_matches / possible, 1e-12), 0.5)
        u = _without_matches(observed_u, m, lambda_, 1.0 / possible)
    training = {
        "records": len(left) if right is None else [len(left), len(right)],
        "mode": "deduplication" if right is None else "linkage",
        "seed": seed,
        "random_pairs": random_pairs,
        "field_presence": {name: round(share, 4) for name, share in zip(FIELD_NAMES, present_share, strict=True)},
        "rules": rule_report,
        "candidate_pairs": union_total,
        "expected_matches": round(expected_matches, 1),
        "blocking": stats.as_dict(),
        "cap": cap,
    }
    fields = tuple(FieldParameters(f.name, f.levels[:-1], tuple(m[i]), tuple(u[i])) for i, f in enumerate(FIELDS))
    return ParameterSet(fields, lambda_, thresholds or Thresholds(), created or "", training)


def _without_matches(observed: Table, m: Table, lambda_: float, floor: float) -> Table:
    """u of non-matches from u observed over all pairs: those include the true matches (a share λ of the pairs,
    agreeing at each level with probability m), which for near-unique traits are most of the agreements (two
    files of 5,000 records share 5,000 true pairs and a handful of coincidental birth-date agreements per thousand).
    u = (u_all - λ m) / (1 - λ), floored at one pair of the whole population, rows renormalised."""
    corrected = []
    for row_u, row_m in zip(observed, m, strict=True):
        row = [max((uo - lambda_ * mo) / (1.0 - lambda_), floor) for uo, mo in zip(row_u, row_m, strict=True)]
        total = sum(row)
        corrected.append([value / total for value in row])
    return corrected


def _features(records: Sequence[IdentityRecord] | Sequence[Features]) -> list[Features]:
    return [r if isinstance(r, Features) else prepare(r) for r in records]


def _initial_m() -> Table:
    """Agreement is likely for the same person: 0.9 on exact, the rest shared decreasingly."""
    rows = []
    for size in SIZES:
        row = [0.9] + [0.1 / 2**level for level in range(1, size)]
        total = sum(row)
        rows.append([value / total for value in row])
    return rows


def _random_u(
    left: list[Features], right: list[Features] | None, count: int, rng: random.Random
) -> tuple[Table, list[float]]:
    counts = [[0] * size for size in SIZES]
    present = [0] * len(FIELDS)
    n_left, n_right = len(left), len(right) if right is not None else len(left)
    samples = 0
    if n_left >= 1 and n_right >= 1 and (right is not None or n_left >= 2):
        for _ in range(count):
            i = rng.randrange(n_left)
            if right is None:
                j = rng.randrange(n_left - 1)
                j += j >= i
                vector = compare(left[i], left[j])
            else:
                vector = compare(left[i], right[rng.randrange(n_right)])
            samples += 1
            for f, level in enumerate(vector):
                if level < SIZES[f]:
                    counts[f][level] += 1
                    present[f] += 1
    share = [present[f] / samples if samples else 0.0 for f in range(len(FIELDS))]
    u: Table = []
    for f, spec in enumerate(FIELDS):
        size = SIZES[f]
        exact = _exact_share(left, right, EXACT_KEYS[spec.name])
        if share[f] > 0 and exact is not None:
            exact_u = min(max(exact / share[f], 1e-9), 0.999)
            others = [counts[f][level] + 0.5 for level in range(1, size)]
            total = sum(others)
            row = [exact_u] + [(1.0 - exact_u) * value / total for value in others]
        else:
            row = [(counts[f][level] + 0.5) / (present[f] + 0.5 * size) for level in range(size)]
        u.append(row)
    return u, share


def _exact_share(
    left: list[Features], right: list[Features] | None, key: Callable[[Features], Hashable | None]
) -> float | None:
    """The share of all pairs whose exact keys are equal (present on both sides), from value frequencies."""
    left_counts = Counter(k for k in map(key, left) if k is not None)
    if right is None:
        n = len(left)
        if n < 2:
            return None
        return sum(c * (c - 1) for c in left_counts.values()) / (n * (n - 1))
    right_counts = Counter(k for k in map(key, right) if k is not None)
    if not left or not right:
        return None
    return sum(c * right_counts.get(k, 0) for k, c in left_counts.items()) / (len(left) * len(right))


def _rule_patterns(
    left: list[Features],
    right: list[Features] | None,
    rule: BlockingRule,
    cap: int,
    limit: int,
    rng: random.Random,
) -> tuple[Counter[tuple[int, ...]], int, int]:
    """Comparison patterns of one rule's pairs; a reservoir sample of ``limit`` pairs when there are more."""
    pairs = ((i, j) for i, j, _ in candidate_pairs(left, right, rules=(rule,), cap=cap))
    return _patterns(left, right, pairs, limit, rng)


def _union_patterns(
    left: list[Features],
    right: list[Features] | None,
    rules: Sequence[BlockingRule],
    cap: int,
    limit: int,
    rng: random.Random,
) -> tuple[Counter[tuple[int, ...]], int, int, BlockingStats]:
    stats = BlockingStats()
    pairs = ((i, j) for i, j, _ in candidate_pairs(left, right, rules=rules, cap=cap, stats=stats))
    patterns, total, sampled = _patterns(left, right, pairs, limit, rng)
    return patterns, total, sampled, stats


def _patterns(
    left: list[Features],
    right: list[Features] | None,
    pairs: Iterator[tuple[int, int]],
    limit: int,
    rng: random.Random,
) -> tuple[Counter[tuple[int, ...]], int, int]:
    """Patterns of a uniform sample of at most ``limit`` pairs (reservoir sampling: one pass, O(limit) memory)."""
    chosen: list[tuple[int, int]] = []
    total = 0
    for pair in pairs:
        total += 1
        if len(chosen) < limit:
            chosen.append(pair)
        else:
            slot = rng.randrange(total)
            if slot < limit:
                chosen[slot] = pair
    other = right if right is not None else left
    return Counter(compare(left[i], other[j]) for i, j in chosen), total, len(chosen)
