"""Fellegi-Sunter scoring: comparison vector → match weight → posterior probability → decision and IHE grade.

The match weight is the sum over fields of log2(m/u) of the observed level (``missing`` adds 0). With the prior odds
λ/(1-λ), the posterior is p = 1 / (1 + 2^-(W + log2(λ/(1-λ)))): Bayes' rule under the model's assumption that fields
disagree independently given the match status.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from esante.mpi.matching.features import Features
from esante.mpi.matching.fields import FIELDS, best_rest, compare
from esante.mpi.matching.parameters import ParameterSet


@dataclass(frozen=True, slots=True)
class FieldComparison:
    """One trait of a scored pair, as an identity-vigilance agent sees it: the level and what it weighed."""

    field: str
    level: str
    weight: float


@dataclass(frozen=True, slots=True)
class Score:
    probability: float
    weight: float
    decision: str
    grade: str
    vector: tuple[int, ...]
    field_weights: tuple[float, ...]

    @property
    def comparisons(self) -> tuple[FieldComparison, ...]:
        return tuple(
            FieldComparison(f.name, f.levels[level], w)
            for f, level, w in zip(FIELDS, self.vector, self.field_weights, strict=True)
        )

    def levels(self) -> dict[str, str]:
        return {f.name: f.levels[level] for f, level in zip(FIELDS, self.vector, strict=True)}


def probability_from_weight(weight: float) -> float:
    """The logistic of a base-2 log-odds, without overflow at the extremes."""
    if weight >= 0:
        return 1.0 / (1.0 + 2.0**-weight)
    odds = 2.0**weight
    return odds / (1.0 + odds)


class Scorer:
    """Scores prepared pairs with one parameter set (weights precomputed once)."""

    def __init__(self, params: ParameterSet, lambda_: float | None = None) -> None:
        """``lambda_`` overrides the set's prior, e.g. 1/N for a look-up of a person known to be among N records."""
        self.params = params
        self.table = params.weight_table()
        prior = params.lambda_ if lambda_ is None else lambda_
        if not 0.0 < prior < 1.0:
            raise ValueError("the prior must be strictly between 0 and 1")
        self.prior_weight = math.log2(prior / (1.0 - prior))
        self.thresholds = params.thresholds
        self.best_rest = best_rest(self.table)

    def weight_floor(self, min_probability: float) -> float:
        """The field weight (prior excluded) a pair needs to reach ``min_probability`` (-inf for 0)."""
        if min_probability <= 0.0:
            return -math.inf
        if min_probability >= 1.0:
            return math.inf
        return math.log2(min_probability / (1.0 - min_probability)) - self.prior_weight

    def weight(self, vector: tuple[int, ...]) -> float:
        table = self.table
        return sum(table[i][level] for i, level in enumerate(vector))

    def probability(self, vector: tuple[int, ...]) -> float:
        return probability_from_weight(self.weight(vector) + self.prior_weight)

    def score_vector(self, vector: tuple[int, ...]) -> Score:
        field_weights = tuple(self.table[i][level] for i, level in enumerate(vector))
        weight = sum(field_weights)
        probability = probability_from_weight(weight + self.prior_weight)
        return Score(
            probability=probability,
            weight=weight + self.prior_weight,
            decision=self.thresholds.decision(probability),
            grade=self.thresholds.grade(probability),
            vector=vector,
            field_weights=field_weights,
        )

    def score(self, a: Features, b: Features) -> Score:
        return self.score_vector(compare(a, b))
