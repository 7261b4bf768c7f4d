"""One comparator per trait: two prepared records in, a comparison level out (see ``levels``).

Thresholds on string similarity are Jaro-Winkler (rapidfuzz), which rewards a shared beginning, as names typed
from hearing or with a typo keep it. They sit where a one-letter typo in a 5-letter name still counts as close
(0.92) and a different name of the same family of spellings as weak (0.80); the model then learns what each level is
worth, so these cut-offs only have to order the evidence, not weigh it.
"""

from __future__ import annotations

from rapidfuzz.distance import OSA, JaroWinkler

from esante.mpi.matching.features import Features, NameForm
from esante.mpi.matching.levels import (
    CITY_ONLY,
    CLOSE,
    DIFFERENT,
    EXACT,
    MISSING,
    NEAR,
    OLD_FORM,
    PARTIAL,
    PHONETIC,
    POSTAL_AND_CITY_CLOSE,
    POSTAL_ONLY,
    SAME_LOCALITY,
    SAME_STREET,
    SAME_YEAR,
    STREET_ELSEWHERE,
    STREET_ONLY,
    SUBSET,
    TRANSPOSED,
    TYPO,
    WEAK,
)

CLOSE_SIMILARITY = 0.92
WEAK_SIMILARITY = 0.80
PLACE_SIMILARITY = 0.90
TEXT_CLOSE = 0.90
TEXT_WEAK = 0.75


def similarity(a: str, b: str) -> float:
    return JaroWinkler.similarity(a, b)


def one_edit(a: str, b: str) -> bool:
    """One substitution, insertion, deletion or adjacent transposition apart (optimal string alignment)."""
    return OSA.distance(a, b, score_cutoff=1) <= 1


def compare_names(a: NameForm | None, b: NameForm | None) -> str:
    """Family or given names: exact (same core, umlaut spellings equal, particles and spaces ignored), close
    (Jaro-Winkler ≥ 0.92, or one edit in names of 4+ letters, or the same names in another order), subset (every
    name of one is in the other: missing middle names ``Jean``/``Jean Marie``, a truncated compound
    ``Da Silva Santos``/``Santos``), partial (a shared name, others differing: ``Jean Paul``/``Jean Marc``), phonetic
    (same phonetic key), weak (Jaro-Winkler ≥ 0.80), different; missing when either is absent."""
    if a is None or b is None:
        return MISSING
    if a.same(b):
        return EXACT
    score = similarity(a.compact, b.compact)
    if score >= CLOSE_SIMILARITY or (min(len(a.compact), len(b.compact)) >= 4 and one_edit(a.compact, b.compact)):
        return CLOSE
    if len(a.tokens) > 1 or len(b.tokens) > 1:
        if sorted(a.tokens) == sorted(b.tokens):
            return CLOSE
        left, right = set(a.tokens), set(b.tokens)
        if left <= right or right <= left:
            return SUBSET
        if not left.isdisjoint(right):
            return PARTIAL
    if a.phon and a.phon == b.phon:
        return PHONETIC
    if score >= WEAK_SIMILARITY:
        return WEAK
    return DIFFERENT


_NAME_RANK = {
    level: rank for rank, level in enumerate((EXACT, CLOSE, SUBSET, PARTIAL, PHONETIC, WEAK, DIFFERENT, MISSING))
}


def compare_family(a: Features, b: Features) -> str:
    """The current family names, also crossed with the birth names: a woman known under her birth name in one
    record and her married name in the other agrees through the cross. The best level wins."""
    best = compare_names(a.family, b.family)
    for left, right in ((a.family, b.birth), (a.birth, b.family)):
        if best == EXACT:
            break
        if left is None or right is None:
            continue
        level = compare_names(left, right)
        if _NAME_RANK[level] < _NAME_RANK[best]:
            best = level
    return best


def compare_birth_names(a: Features, b: Features) -> str:
    """Birth (maiden) names, only when both records state one: a missing birth name is not the family name."""
    return compare_names(a.birth, b.birth)


def compare_given(a: Features, b: Features) -> str:
    return compare_names(a.given, b.given)


def compare_birth_date(a: Features, b: Features) -> str:
    """exact; partial (one date lacks its day or month and the known parts agree); transposed (day and month
    swapped); typo (one digit of YYYYMMDD wrong, or two adjacent digits swapped); same_year; different."""
    if a.birth_date is None or b.birth_date is None or a.birth_digits is None or b.birth_digits is None:
        return MISSING
    (ay, am, ad), (by, bm, bd) = a.birth_date, b.birth_date
    complete = am and ad and bm and bd
    if complete and a.birth_digits == b.birth_digits:
        return EXACT
    if not complete and ay == by and (not am or not bm or am == bm) and (not ad or not bd or ad == bd):
        return PARTIAL
    if complete and ay == by and am == bd and ad == bm:
        return TRANSPOSED
    if one_edit(a.birth_digits, b.birth_digits):
        return TYPO
    if ay == by:
        return SAME_YEAR
    return DIFFERENT


def compare_sex(a: Features, b: Features) -> str:
    if a.sex is None or b.sex is None:
        return MISSING
    return EXACT if a.sex == b.sex else DIFFERENT


def compare_places(a: NameForm | None, b: NameForm | None) -> str:
    """Birth place or city: exact, close (Jaro-Winkler ≥ 0.90, same phonetic key, or a shared word of a compound
    name: ``Esch-sur-Alzette``/``Esch``), different."""
    if a is None or b is None:
        return MISSING
    if a.same(b):
        return EXACT
    if similarity(a.compact, b.compact) >= PLACE_SIMILARITY or (a.phon and a.phon == b.phon):
        return CLOSE
    if (len(a.tokens) > 1 or len(b.tokens) > 1) and a.tokens[0] == b.tokens[0]:
        return CLOSE
    return DIFFERENT


def compare_birth_place(a: Features, b: Features) -> str:
    return compare_places(a.birth_place, b.birth_place)


def _line_similarity(a: NameForm | None, b: NameForm | None) -> float:
    return 0.0 if a is None or b is None else similarity(a.compact, b.compact)


def address_lines(a: Features, b: Features) -> tuple[tuple[NameForm | None, NameForm | None], ...]:
    """Pair the street lines and the other lines of two addresses, straight or crossed, whichever agrees more:
    people (and forms) put the building or residence line before or after the street. Lines cross only when both
    addresses have both, and then the better-agreeing crossed pair is the street: the result does not depend on
    which record comes first."""
    if a.street is None or a.complement is None or b.street is None or b.complement is None:
        return (a.street, b.street), (a.complement, b.complement)
    first = _line_similarity(a.street, b.complement)
    second = _line_similarity(a.complement, b.street)
    straight = _line_similarity(a.street, b.street) + _line_similarity(a.complement, b.complement)
    if first + second <= straight:
        return (a.street, b.street), (a.complement, b.complement)
    crossed = ((a.street, b.complement), (a.complement, b.street))
    if second > first or (second == first and a.complement.compact < a.street.compact):
        crossed = crossed[::-1]
    return crossed


def compare_address(a: Features, b: Features) -> tuple[str, str]:
    """The street and other-line levels together (the line pairing is computed once)."""
    if (a.street is None and a.complement is None) or (b.street is None and b.complement is None):
        return _street_level(a, b, a.street, b.street), MISSING
    streets, others = address_lines(a, b)
    return _street_level(a, b, *streets), _complement_level(*others)


def compare_street(a: Features, b: Features) -> str:
    """The street line (paired with ``address_lines``): exact (same street and house number), close (same street and
    one number missing, or a close street name and the same number), street_only (same or close street, another
    number), weak (similar street name, or only house numbers to compare and they agree), different."""
    return compare_address(a, b)[0]


def _street_level(a: Features, b: Features, left: NameForm | None, right: NameForm | None) -> str:
    if left is not None and right is not None:
        same = left.compact == right.compact
        score = 1.0 if same else similarity(left.compact, right.compact)
        near = score >= TEXT_CLOSE
        numbers = a.house is not None and b.house is not None
        same_house = numbers and a.house == b.house
        if same and same_house:
            return EXACT
        if (same and not numbers) or (near and same_house):
            return CLOSE
        if near:
            return STREET_ONLY
        if score >= TEXT_WEAK:
            return WEAK
        return DIFFERENT
    if a.house is not None and b.house is not None and (left is None) == (right is None):
        return WEAK if a.house == b.house else DIFFERENT
    return MISSING


def compare_complement(a: Features, b: Features) -> str:
    """The other address lines (building, c/o, residence), compared without spaces, paired like the street."""
    return compare_address(a, b)[1]


def _complement_level(left: NameForm | None, right: NameForm | None) -> str:
    if left is None or right is None:
        return MISSING
    if left.compact == right.compact:
        return EXACT
    score = similarity(left.compact, right.compact)
    return CLOSE if score >= TEXT_CLOSE else WEAK if score >= TEXT_WEAK else DIFFERENT


def _codes(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return None
    if a == b:
        return EXACT
    return CLOSE if len(a) == len(b) and one_edit(a, b) else DIFFERENT


def compare_locality(a: Features, b: Features) -> str:
    """Postal code and city together, because they are not independent (a postal code names its city): exact
    (both agree), postal_city_close (one agrees, the other is close), postal_only, city_only, close (one or both
    close: a postal code one digit or one swap away, a city with a typo), different."""
    postal = _codes(a.postal, b.postal)
    city = compare_places(a.city, b.city)
    if postal is None and city == MISSING:
        return MISSING
    if postal == EXACT and city == EXACT:
        return EXACT
    if (postal == EXACT and city == CLOSE) or (postal == CLOSE and city == EXACT):
        return POSTAL_AND_CITY_CLOSE
    if postal == EXACT:
        return POSTAL_ONLY
    if city == EXACT:
        return CITY_ONLY
    if postal == CLOSE or city == CLOSE:
        return CLOSE
    return DIFFERENT


_STREET_AGREES = frozenset({EXACT, CLOSE, STREET_ONLY})
_LOCALITY_AGREES = frozenset({EXACT, POSTAL_AND_CITY_CLOSE})


def combine_address(street: str, locality: str) -> str:
    """The joint level of a street level and a locality level.

    Street and locality are not independent (a move changes both; a street name means little in another town), so
    they form one field whose levels are their combinations, grouped: exact (both exact), close (both agree, one of
    them not exactly: a typo in the street, a postal code with a close city, another house number in the same
    street and locality), same_street (the same street and number, the locality only partly: postal code or city
    alone, or unknown), same_locality (same locality, another or unknown street),
    near (the locality agrees partly: postal code or city only, or close; the street does not), street_elsewhere
    (the same street in a different locality: a coincidence or an error in the locality), different (the street
    and/or the locality differ, nothing agrees), missing (nothing to compare)."""
    street_agrees = street in _STREET_AGREES
    if locality == DIFFERENT:
        return STREET_ELSEWHERE if street_agrees and street != STREET_ONLY else DIFFERENT
    if street == EXACT and locality == EXACT:
        return EXACT
    if street_agrees and street != STREET_ONLY:
        return CLOSE if locality in _LOCALITY_AGREES else SAME_STREET
    if street_agrees:
        return CLOSE if locality in _LOCALITY_AGREES else NEAR
    if locality in _LOCALITY_AGREES:
        return SAME_LOCALITY
    if locality != MISSING:
        return NEAR
    return MISSING if street == MISSING else DIFFERENT


def compare_street_and_locality(a: Features, b: Features) -> tuple[str, str]:
    """The joint address level and the other-lines level (street lines are paired once for both)."""
    street, complement = compare_address(a, b)
    return combine_address(street, compare_locality(a, b)), complement


def compare_joint_address(a: Features, b: Features) -> str:
    return compare_street_and_locality(a, b)[0]


def compare_region(a: Features, b: Features) -> str:
    """State (or canton) and country: different if either differs where both are known."""
    compared = False
    for left, right in ((a.state, b.state), (a.country, b.country)):
        if left is not None and right is not None:
            if left != right:
                return DIFFERENT
            compared = True
    return EXACT if compared else MISSING


def compare_matricule(a: Features, b: Features) -> str:
    """exact; old_form (an 11-digit old matricule that is the first 11 digits of the 13-digit one: the current form
    appended two check digits); typo (one digit wrong or two adjacent digits swapped); different."""
    if a.matricule is None or b.matricule is None:
        return MISSING
    left, right = a.matricule, b.matricule
    if left == right:
        return EXACT
    if len(left) != len(right):
        left, right = left[:11], right[:11]
        if left == right:
            return OLD_FORM
    if one_edit(left, right) and len(left) == len(right):
        return TYPO
    return DIFFERENT
