"""Expectation-maximisation for the two-class Fellegi-Sunter mixture (unsupervised: no labels needed).

The data are comparison vectors (one level index per field) counted by pattern: a pair's likelihood under class M is
the product over active fields of m[field][level], under U of u[field][level]; ``missing`` levels (the last index of
each field) and inactive fields contribute nothing. Each iteration computes every pattern's responsibility
r = λ·P(g|M) / (λ·P(g|M) + (1-λ)·P(g|U)) (E step) and re-estimates m, u and λ as responsibility-weighted level
frequencies (M step). Working on distinct patterns, not pairs, makes an iteration O(patterns · fields): a few
thousand patterns even for millions of pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Table = list[list[float]]


@dataclass(slots=True)
class EMResult:
    m: Table
    u: Table
    lambda_: float
    iterations: int
    converged: bool


def run_em(
    patterns: Mapping[tuple[int, ...], int],
    sizes: Sequence[int],
    active: Sequence[bool],
    m: Table,
    u: Table,
    lambda_: float,
    *,
    fix_m: bool = False,
    fix_u: bool = False,
    max_iterations: int = 200,
    tolerance: float = 1e-6,
    floor: float = 1e-9,
    pseudo_count: float = 1.0,
) -> EMResult:
    """Estimate m, u and λ from ``patterns`` (vector → count). ``sizes[f]`` is field f's number of levels without
    ``missing`` (so index ``sizes[f]`` means missing). Tables are copied, never modified in place. Convergence is
    reached when no parameter moves by more than ``tolerance`` in one iteration.

    The M step adds ``pseudo_count`` pairs to every level of every class (a Dirichlet prior, Laplace smoothing):
    without it a level the current matches never show gets m → 0 and a weight of -30 bits, so one rare
    disagreement (a birth place spelt differently) would veto a link that every other trait supports.
    """
    m = [list(row) for row in m]
    u = [list(row) for row in u]
    items = [(vector, count) for vector, count in patterns.items() if count > 0]
    total = sum(count for _, count in items)
    if total == 0:
        return EMResult(m, u, lambda_, 0, True)
    fields = [f for f, on in enumerate(active) if on]
    converged = False
    iteration = 0
    for iteration in range(1, max_iterations + 1):  # noqa: B007 - the count is reported
        m_counts = [[0.0] * sizes[f] for f in range(len(sizes))]
        u_counts = [[0.0] * sizes[f] for f in range(len(sizes))]
        matched = 0.0
        for vector, count in items:
            pm, pu = lambda_, 1.0 - lambda_
            for f in fields:
                level = vector[f]
                if level < sizes[f]:
                    pm *= m[f][level]
                    pu *= u[f][level]
            r = pm / (pm + pu) if pm + pu > 0 else 0.0
            rm, ru = r * count, (1.0 - r) * count
            matched += rm
            for f in fields:
                level = vector[f]
                if level < sizes[f]:
                    m_counts[f][level] += rm
                    u_counts[f][level] += ru
        new_lambda = min(max(matched / total, floor), 1.0 - floor)
        change = abs(new_lambda - lambda_)
        lambda_ = new_lambda
        for f in fields:
            for table, counts, fixed in ((m, m_counts, fix_m), (u, u_counts, fix_u)):
                if fixed:
                    continue
                row_total = sum(counts[f]) + pseudo_count * sizes[f]
                if row_total <= 0:
                    continue
                for level in range(sizes[f]):
                    value = max((counts[f][level] + pseudo_count) / row_total, floor)
                    change = max(change, abs(value - table[f][level]))
                    table[f][level] = value
                norm = sum(table[f])
                table[f] = [value / norm for value in table[f]]
        if change < tolerance:
            converged = True
            break
    return EMResult(m, u, lambda_, iteration, converged)
