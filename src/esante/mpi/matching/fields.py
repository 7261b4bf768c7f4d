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
    Field("address", lv.ADDRESS_LEVELS, cmp.compare_joint_address, "street and house number with postal code and city"),
    Field("address_complement", lv.TEXT_LEVELS, cmp.compare_complement, "other address lines"),
    Field("region", lv.REGION_LEVELS, cmp.compare_region, "state and country, when the localities differ"),
    Field("matricule", lv.MATRICULE_LEVELS, cmp.compare_matricule, "national identification number"),
)
FIELD_NAMES = tuple(f.name for f in FIELDS)
_INDEX = tuple({level: i for i, level in enumerate(f.levels)} for f in FIELDS)
(
    _NAME_INDEX,
    _,
    _,
    _DATE_INDEX,
    _SEX_INDEX,
    _PLACE_INDEX,
    _ADDRESS_INDEX,
    _TEXT_INDEX,
    _REGION_INDEX,
    _MATRICULE_INDEX,
) = _INDEX
_POOR = frozenset({lv.WEAK, lv.DIFFERENT})
_NAME_RANK = {level: rank for rank, level in enumerate(lv.NAME_LEVELS)}
_REGION_COMPARED = frozenset({lv.DIFFERENT, lv.MISSING})
_GOOD = frozenset({lv.EXACT, lv.CLOSE})


def compare(a: Features, b: Features) -> tuple[int, ...]:
    """The comparison vector of two prepared records: for each field of ``FIELDS``, the index of its level.

    Given and family names swapped between the records (a form filled in the wrong order, a name order that differs
    between cultures) would read as two disagreements: when both straight comparisons are weak or different and a
    crossed one (given with family) is exact or close, the crossed levels are used, ``exact`` lowered to ``close``
    (the swap itself is a small doubt), the better one for the given names.

    Address traits are compared together, because a move changes them together (counting it three times would
    veto the true link of everyone who moved): street and locality form one joint field (``combine_address``), and
    the region (state, country) is compared only when the localities differ or are unknown (within one locality it
    agrees by construction, so it would count the same agreement twice).

    Written out field by field (in :func:`compare_bounded`, which this is without a bound) rather than looping over
    ``FIELDS`` (which the test suite checks it agrees with): this is the engine's inner loop.
    """
    vector = compare_bounded(a, b, None, 0.0, 0.0)
    assert vector is not None  # no table: never bounded
    return vector


def compare_bounded(
    a: Features, b: Features, table: tuple[tuple[float, ...], ...] | None, floor: float, best_rest: float
) -> tuple[int, ...] | None:
    """``compare``, or None as soon as the pair's weight can no longer reach ``floor``.

    The names, the birth date, sex, birth place and matricule are compared first; if their weights plus the best
    weights the remaining fields (birth name, address, other address lines, region) could add stay below ``floor``,
    the pair is dropped without comparing addresses (a look-up's candidates from a city or postal-code block mostly
    end here). A vector that is returned is exactly ``compare``'s.
    """
    given = cmp.compare_names(a.given, b.given)
    family = cmp.compare_family(a, b)
    if given in _POOR and family in _POOR:
        crossed_given = cmp.compare_names(a.given, b.family)
        crossed_family = cmp.compare_names(a.family, b.given)
        if crossed_given in _GOOD or crossed_family in _GOOD:
            given, family = _crossed(crossed_given, crossed_family)
    g, f = _NAME_INDEX[given], _NAME_INDEX[family]
    d = _DATE_INDEX[cmp.compare_birth_date(a, b)]
    x = _SEX_INDEX[cmp.compare_sex(a, b)]
    pl = _PLACE_INDEX[cmp.compare_places(a.birth_place, b.birth_place)]
    m = _MATRICULE_INDEX[cmp.compare_matricule(a, b)]
    if table is not None:
        known = table[0][g] + table[1][f] + table[3][d] + table[4][x] + table[5][pl] + table[9][m]
        if known + best_rest < floor:
            return None
    locality = cmp.compare_locality(a, b)
    street, complement = cmp.compare_address(a, b)
    address = cmp.combine_address(street, locality)
    region = cmp.compare_region(a, b) if locality in _REGION_COMPARED else lv.MISSING
    return (
        g,
        f,
        _NAME_INDEX[cmp.compare_names(a.birth, b.birth)],
        d,
        x,
        pl,
        _ADDRESS_INDEX[address],
        _TEXT_INDEX[complement],
        _REGION_INDEX[region],
        m,
    )


_REST = (2, 6, 7, 8)  # birth_name, address, address_complement, region: compared last


def best_rest(table: tuple[tuple[float, ...], ...]) -> float:
    """The most the fields ``compare_bounded`` compares last can add (``missing`` weighs 0: never below 0 each)."""
    return sum(max(0.0, *table[i]) for i in _REST)


def _crossed(first: str, second: str) -> tuple[str, str]:
    """The (given, family) levels of crossed names: the better crossed level goes to the given names, the other to
    the family name, so the vector does not depend on which record comes first; exact is lowered to close."""
    better, worse = (first, second) if _NAME_RANK[first] <= _NAME_RANK[second] else (second, first)
    return (lv.CLOSE if better == lv.EXACT else better), (lv.CLOSE if worse == lv.EXACT else worse)


def describe(vector: tuple[int, ...]) -> dict[str, str]:
    """Field name → level name, for people and logs."""
    return {f.name: f.levels[i] for f, i in zip(FIELDS, vector, strict=True)}


def compare_by_fields(a: Features, b: Features) -> tuple[int, ...]:
    """The same vector as ``compare`` from the generic ``FIELDS`` loop and the same swap rule (for tests)."""
    names = [f.compare(a, b) for f in FIELDS]
    if names[0] in _POOR and names[1] in _POOR:
        crossed_given = cmp.compare_names(a.given, b.family)
        crossed_family = cmp.compare_names(a.family, b.given)
        if crossed_given in _GOOD or crossed_family in _GOOD:
            names[0], names[1] = _crossed(crossed_given, crossed_family)
    if cmp.compare_locality(a, b) not in _REGION_COMPARED:
        names[FIELD_NAMES.index("region")] = lv.MISSING
    return tuple(index[level] for index, level in zip(_INDEX, names, strict=True))
