"""A versioned, JSON-serialisable Fellegi-Sunter parameter set: per field and level, m and u; the prior λ; thresholds.

``m`` = P(level | the two records are the same person), ``u`` = P(level | they are not), over the field's levels
other than ``missing`` (which weighs 0 by construction). ``lambda_`` is the probability that two records drawn at
random from the population the set was trained on are the same person. The ``version`` is derived from the content
(``fs-`` + 12 hex digits of its SHA-256), so two sets with equal numbers have equal versions and a stored decision
can name exactly the parameters that made it.

Thresholds and IHE match grades (ITI-119), on the posterior match probability p:

====================  ===========================  ==========================================
p                     decision                     grade
====================  ===========================  ==========================================
p ≥ auto_link         ``auto_link``                ``certain``
probable ≤ p < auto   ``review``                   ``probable``
review ≤ p < probable ``review``                   ``possible``
p < review            ``no_link``                  ``certainly-not``
====================  ===========================  ==========================================

Defaults: auto_link 0.95 (a false automatic link merges two people's records, so an automatic decision asks for
19-to-1 odds), probable 0.5 (more likely the same person than not), review 0.1 (below 1-in-10 an agent's time is
better spent elsewhere). They are decided from these costs, never tuned on a labelled benchmark.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from esante.mpi.matching.fields import FIELDS
from esante.mpi.matching.levels import MISSING

FORMAT = "esante-mpi-fs/1"
AUTO_LINK, REVIEW, NO_LINK = "auto_link", "review", "no_link"
CERTAIN, PROBABLE, POSSIBLE, CERTAINLY_NOT = "certain", "probable", "possible", "certainly-not"


class ParameterError(ValueError):
    """A parameter set that cannot be used; the message names the field or value."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    auto_link: float = 0.95
    probable: float = 0.5
    review: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.review <= self.probable <= self.auto_link < 1.0:
            raise ParameterError("thresholds must satisfy 0 < review <= probable <= auto_link < 1")

    def decision(self, probability: float) -> str:
        if probability >= self.auto_link:
            return AUTO_LINK
        return REVIEW if probability >= self.review else NO_LINK

    def grade(self, probability: float) -> str:
        if probability >= self.auto_link:
            return CERTAIN
        if probability >= self.probable:
            return PROBABLE
        return POSSIBLE if probability >= self.review else CERTAINLY_NOT


@dataclass(frozen=True, slots=True)
class FieldParameters:
    """m and u of one field's levels (``missing`` excluded); both sum to 1."""

    name: str
    levels: tuple[str, ...]
    m: tuple[float, ...]
    u: tuple[float, ...]

    def weights(self) -> tuple[float, ...]:
        """log2(m/u) per level, then 0 for ``missing``: the field's contribution to the match weight."""
        return (*(math.log2(m / u) for m, u in zip(self.m, self.u, strict=True)), 0.0)


@dataclass(frozen=True, slots=True)
class ParameterSet:
    fields: tuple[FieldParameters, ...]
    lambda_: float
    thresholds: Thresholds = Thresholds()
    created: str = ""
    training: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.lambda_ < 1.0:
            raise ParameterError(f"lambda {self.lambda_} is not a probability strictly between 0 and 1")
        expected = [(f.name, tuple(level for level in f.levels if level != MISSING)) for f in FIELDS]
        actual = [(f.name, f.levels) for f in self.fields]
        if actual != expected:
            raise ParameterError("the parameter set's fields or levels are not the engine's (made for another version)")
        for f in self.fields:
            for name, values in (("m", f.m), ("u", f.u)):
                if len(values) != len(f.levels) or any(not 0.0 < v <= 1.0 for v in values):
                    raise ParameterError(f"{f.name}: {name} must give a probability in (0, 1] to each level")
                if abs(sum(values) - 1.0) > 1e-6:
                    raise ParameterError(f"{f.name}: {name} does not sum to 1")
        if not self.created:
            object.__setattr__(self, "created", datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def version(self) -> str:
        content = json.dumps(self._content(), sort_keys=True, separators=(",", ":"))
        return "fs-" + hashlib.sha256(content.encode()).hexdigest()[:12]

    def weight_table(self) -> tuple[tuple[float, ...], ...]:
        return tuple(f.weights() for f in self.fields)

    def field_parameters(self, name: str) -> FieldParameters:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def with_thresholds(self, thresholds: Thresholds) -> ParameterSet:
        return ParameterSet(self.fields, self.lambda_, thresholds, self.created, dict(self.training))

    def _content(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "lambda": self.lambda_,
            "thresholds": {
                "auto_link": self.thresholds.auto_link,
                "probable": self.thresholds.probable,
                "review": self.thresholds.review,
            },
            "fields": [
                {
                    "name": f.name,
                    "levels": list(f.levels),
                    "m": dict(zip(f.levels, f.m, strict=True)),
                    "u": dict(zip(f.levels, f.u, strict=True)),
                }
                for f in self.fields
            ],
        }

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "created": self.created, **self._content(), "training": self.training}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParameterSet:
        """Rebuild a set and check it: unknown format, missing keys, a changed ``version`` (edited numbers) and
        fields that are not the engine's are refused with a :class:`ParameterError`."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ParameterError(f"not an MPI parameter set (format must be {FORMAT!r})")
        try:
            fields = tuple(
                FieldParameters(
                    name=str(f["name"]),
                    levels=tuple(f["levels"]),
                    m=tuple(float(f["m"][level]) for level in f["levels"]),
                    u=tuple(float(f["u"][level]) for level in f["levels"]),
                )
                for f in data["fields"]
            )
            thresholds = Thresholds(**{k: float(v) for k, v in data["thresholds"].items()})
            training = dict(data.get("training", {}))
            params = cls(fields, float(data["lambda"]), thresholds, str(data["created"]), training)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ParameterError):
                raise
            raise ParameterError(f"malformed parameter set: {exc!r}") from exc
        if "version" in data and data["version"] != params.version:
            raise ParameterError("the parameter set's version does not match its content (edited by hand?)")
        return params

    @classmethod
    def from_json(cls, text: str) -> ParameterSet:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParameterError(f"parameter set is not JSON: {exc.msg}") from exc
        return cls.from_dict(data)
