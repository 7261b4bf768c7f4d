"""Parameter sets: JSON round trip, versioning, validation; weights, posterior, thresholds and grades."""

from __future__ import annotations

import json
import math

import pytest

from esante.mpi.matching import ParameterError, ParameterSet, Scorer, Thresholds
from esante.mpi.matching.fields import FIELDS
from esante.mpi.matching.parameters import FieldParameters
from esante.mpi.matching.scoring import probability_from_weight


def uniform_set(lambda_: float = 1e-4, thresholds: Thresholds | None = None) -> ParameterSet:
    """m favours agreement (first level), u is uniform: every field's exact level weighs log2(0.9 n / 1)."""
    fields = []
    for f in FIELDS:
        levels = f.levels[:-1]
        n = len(levels)
        m = tuple([0.9] + [0.1 / (n - 1)] * (n - 1))
        u = tuple([1.0 / n] * n)
        fields.append(FieldParameters(f.name, levels, m, u))
    return ParameterSet(tuple(fields), lambda_, thresholds or Thresholds(), created="2025-01-01T00:00:00+00:00")


def test_json_round_trip_keeps_everything_and_the_version() -> None:
    params = uniform_set()
    text = params.to_json()
    again = ParameterSet.from_json(text)
    assert again == params
    assert again.version == params.version
    assert again.created == params.created
    data = json.loads(text)
    assert data["version"].startswith("fs-") and data["format"] == "esante-mpi-fs/1"
    assert [f["name"] for f in data["fields"]] == [f.name for f in FIELDS]
    assert set(data["fields"][0]["m"]) == set(FIELDS[0].levels[:-1])  # missing is not a parameter


def test_version_follows_the_content() -> None:
    assert uniform_set().version == uniform_set().version
    assert uniform_set(lambda_=2e-4).version != uniform_set().version
    assert uniform_set(thresholds=Thresholds(auto_link=0.99)).version != uniform_set().version


def test_edited_numbers_are_detected() -> None:
    data = json.loads(uniform_set().to_json())
    data["lambda"] = 0.5
    with pytest.raises(ParameterError, match="version does not match"):
        ParameterSet.from_dict(data)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format="other"), "not an MPI parameter set"),
        (lambda d: d.pop("fields"), "malformed"),
        (lambda d: d["fields"].pop(), "not the engine's"),
        (lambda d: d["fields"][0]["m"].update(exact=0.5), "does not sum to 1"),
        (lambda d: d["fields"][0]["u"].update(exact=0.0), r"probability in \(0, 1\]"),
        (lambda d: d.update({"lambda": 0.0}), "strictly between 0 and 1"),
        (lambda d: d["thresholds"].update(review=0.99), "thresholds must satisfy"),
    ],
)
def test_bad_parameter_sets_are_refused(edit: object, message: str) -> None:
    data = json.loads(uniform_set().to_json())
    data.pop("version")
    edit(data)  # type: ignore[operator]
    with pytest.raises(ParameterError, match=message):
        ParameterSet.from_dict(data)
    with pytest.raises(ParameterError, match="not JSON"):
        ParameterSet.from_json("{")


def test_weights_and_posterior() -> None:
    params = uniform_set(lambda_=0.001)
    scorer = Scorer(params)
    exact = tuple(0 for _ in FIELDS)
    missing = tuple(f.missing for f in FIELDS)
    expected = sum(math.log2(0.9 * (len(f.levels) - 1)) for f in FIELDS)
    assert scorer.weight(exact) == pytest.approx(expected)
    assert scorer.weight(missing) == 0.0
    prior = math.log2(0.001 / 0.999)
    assert scorer.probability(missing) == pytest.approx(0.001)
    assert scorer.probability(exact) == pytest.approx(1 / (1 + 2 ** -(expected + prior)))
    score = scorer.score_vector(exact)
    assert score.weight == pytest.approx(expected + prior)
    assert [c.field for c in score.comparisons] == [f.name for f in FIELDS]
    assert all(c.level == "exact" for c in score.comparisons)
    assert Scorer(params, lambda_=0.5).probability(missing) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="prior"):
        Scorer(params, lambda_=1.0)


def test_probability_from_weight_is_stable_at_the_extremes() -> None:
    assert probability_from_weight(2000.0) == 1.0
    assert probability_from_weight(-2000.0) == 0.0
    assert probability_from_weight(0.0) == 0.5


@pytest.mark.parametrize(
    ("p", "decision", "grade"),
    [
        (0.999, "auto_link", "certain"),
        (0.95, "auto_link", "certain"),
        (0.9499, "review", "probable"),
        (0.5, "review", "probable"),
        (0.4999, "review", "possible"),
        (0.1, "review", "possible"),
        (0.0999, "no_link", "certainly-not"),
        (0.0, "no_link", "certainly-not"),
    ],
)
def test_default_thresholds_decisions_and_ihe_grades(p: float, decision: str, grade: str) -> None:
    thresholds = Thresholds()
    assert (thresholds.auto_link, thresholds.probable, thresholds.review) == (0.95, 0.5, 0.1)
    assert thresholds.decision(p) == decision
    assert thresholds.grade(p) == grade


def test_thresholds_must_be_ordered() -> None:
    with pytest.raises(ParameterError):
        Thresholds(auto_link=0.5, probable=0.6)
    with pytest.raises(ParameterError):
        Thresholds(review=0.0)
    with pytest.raises(ParameterError):
        Thresholds(auto_link=1.0)
