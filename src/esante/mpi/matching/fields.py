"""The compared fields, in a fixed order: the comparison vector of a pair of records is one level per field.

The order is part of a parameter set (it names its fields), so adding a field needs a new parameter set, never a
silent reinterpretation of stored m/u.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from esante.mpi.matching import comparators as cmp
from esante.mpi.matching import levels as lv
from esante.mpi.matching.features import Features


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    levels: tuple[str, ...]
    compare: Callable[[Features, Features], str]
    description: str

    @property
    def missing(self) -> int:
        return len(self.levels) - 1


FIELDS: tuple[Field, ...] = (
    Field("given", lv.NAME_LEVELS, cmp.compare_given, "given names (order, middle names, swaps)"),
    Field("family", lv.NAME_LEVELS, cmp.compare_family, "current family name, crossed with birth names"),
    Field("birth_name", lv.NAME_LEVELS, cmp.compare_birth_names, "birth (maiden) names when both are stated"),
    Field("birth_date", lv.DATE_LEVELS, cmp.compare_birth_date, "birth date, partial dates and typos"),
    Field("sex", lv.SEX_LEVELS, cmp.compare_sex, "administrative sex"),
    Field("birth_place", lv.PLACE_LEVELS, cmp.compare_birth_place, "birth place"),
    Field("street", lv.STREET_LEVELS, cmp.compare_street, "house number and street"),
    Field("address_complement", lv.TEXT_LEVELS, cmp.compare_complement, "other address lines"),
    Field("locality", lv.LOCALITY_LEVELS, cmp.compare_locality, "postal code and city"),
    Field("region", lv.REGION_LEVELS, cmp.compare_region, "state and country"),
    Field("matricule", lv.MATRICULE_LEVELS, cmp.compare_matricule, "national identification number"),
)
FIELD_NAMES = tuple(f.name for f in FIELDS)
_INDEX = tuple({level: i for i, level in enumerate(f.levels)} for f in FIELDS)
_GIVEN, _FAMILY = FIELD_NAMES.index("given"), FIELD_NAMES.index("family")
_POOR = frozenset({lv.WEAK, lv.DIFFERENT})
_GOOD = frozenset({lv.EXACT, lv.CLOSE})


def compare(a: Features, b: Features) -> tuple[int, ...]:
    """The comparison vector of two prepared records: for each field of ``FIELDS``, the index of its level.

    Given and family names swapped between the records (a form filled in the wrong order, a name order that differs
    between cultures) would read as two disagreements: when both straight comparisons are weak or different and a
    crossed one (given with family) is exact or close, the crossed levels are used, ``exact`` lowered to ``close``
    (the swap itself is a small doubt).
    """
    names = [f.compare(a, b) for f in FIELDS]
    if names[_GIVEN] in _POOR and names[_FAMILY] in _POOR:
        given = cmp.compare_names(a.given, b.family)
        family = cmp.compare_names(a.family, b.given)
        if given in _GOOD or family in _GOOD:
            names[_GIVEN] = lv.CLOSE if given == lv.EXACT else given
            names[_FAMILY] = lv.CLOSE if family == lv.EXACT else family
    return tuple(index[level] for index, level in zip(_INDEX, names, strict=True))


def describe(vector: tuple[int, ...]) -> dict[str, str]:
    """Field name → level name, for people and logs."""
    return {f.name: f.levels[i] for f, i in zip(FIELDS, vector, strict=True)}
