"""Each comparator rule gives its documented level, including Luxembourg's name cases and date transpositions."""

from __future__ import annotations

import random

import pytest

from esante.mpi.matching import comparators as cmp
from esante.mpi.matching import compare, prepare
from esante.mpi.matching.features import name_form
from esante.mpi.matching.fields import FIELD_NAMES, FIELDS, compare_by_fields, describe
from tests.mpi.matching_support import feat, person


def names(a: str | tuple[str, ...], b: str | tuple[str, ...]) -> str:
    left = name_form(*(a if isinstance(a, tuple) else (a,)))
    right = name_form(*(b if isinstance(b, tuple) else (b,)))
    return cmp.compare_names(left, right)


@pytest.mark.parametrize(
    ("a", "b", "level"),
    [
        ("Gonçalves", "GONCALVES", "exact"),
        ("Müller", "Mueller", "exact"),
        ("Müller", "Muller", "exact"),
        ("Weiß", "Weiss", "exact"),
        ("De Oliveira", "Oliveira", "exact"),
        ("d'Almeida", "Almeida", "exact"),
        ("van der Berg", "Berg", "exact"),
        ("Schmit-Weber", "Schmit Weber", "exact"),
        ("Da Silva", "Dasilva", "exact"),
        (("Jean-Marie",), ("Jean", "Marie"), "exact"),
        ("Schmitt", "Schmit", "close"),
        ("Hoffmann", "Hofmann", "close"),
        ("Kremer", "Kreemer", "close"),
        (("Anne", "Marie"), ("Marie", "Anne"), "close"),
        ("Da Silva Santos", "Santos", "subset"),
        ("Schmit-Weber", "Weber", "subset"),
        (("Jean",), ("Jean", "Paul", "Marie"), "subset"),
        (("Jean", "Paul"), ("Jean", "Marc"), "partial"),
        ("Ferreira Santos", "Santos Costa", "partial"),
        ("Meyer", "Maier", "phonetic"),
        ("Lefèvre", "Lefebvre", "close"),
        ("Thibault", "Thibaud", "close"),
        ("Philippe", "Filipe", "phonetic"),
        ("Martin", "Marten", "close"),
        ("Martins", "Marques", "weak"),
        ("Schmit", "Weber", "different"),
    ],
)
def test_name_levels(a: str | tuple[str, ...], b: str | tuple[str, ...], level: str) -> None:
    assert names(a, b) == level
    assert names(b, a) == level


def test_missing_name() -> None:
    assert cmp.compare_names(None, name_form("Schmit")) == "missing"
    assert name_form("  ") is None


def test_married_woman_under_her_birth_name_agrees_through_the_cross() -> None:
    certified = feat(family="Weber", birth_family="Schmit", sex="female")
    local = feat(family="Schmit", sex="female")
    assert cmp.compare_family(certified, local) == "exact"
    assert cmp.compare_family(local, certified) == "exact"
    assert cmp.compare_birth_names(certified, local) == "missing"  # never assumed from the family name


def test_maiden_marker_in_the_family_name_gives_the_birth_name() -> None:
    marked = feat(family="Weber née Schmit", sex="female")
    assert marked.family is not None and marked.family.compact == "weber"
    assert marked.birth is not None and marked.birth.compact == "schmit"
    other = feat(family="Weber", birth_family="Schmit", sex="female")
    assert cmp.compare_birth_names(marked, other) == "exact"


def test_compound_married_name_against_birth_name() -> None:
    certified = feat(family="Schmit-Weber", birth_family="Weber", sex="female")
    assert cmp.compare_family(certified, feat(family="Weber")) == "exact"
    assert cmp.compare_family(certified, feat(family="Schmit")) == "subset"


def date(a: str | None, b: str | None) -> str:
    return cmp.compare_birth_date(feat(born=a), feat(born=b))


@pytest.mark.parametrize(
    ("a", "b", "level"),
    [
        ("1974-05-16", "1974-05-16", "exact"),
        ("1974", "1974-05-16", "partial"),
        ("1974-05", "1974-05-16", "partial"),
        ("19740000", "1974-05-16", "partial"),
        ("19740500", "19740516", "partial"),
        ("1974", "1974", "partial"),
        ("1974-05-07", "1974-07-05", "transposed"),
        ("1974-05-16", "1974-05-18", "typo"),
        ("1974-05-16", "1947-05-16", "typo"),
        ("1980-01-02", "1980-10-02", "typo"),
        ("1974-05-16", "1974-11-02", "same_year"),
        ("1974-05", "1974-06-16", "same_year"),
        ("1974-05-16", "1982-11-02", "different"),
        (None, "1974-05-16", "missing"),
    ],
)
def test_birth_date_levels(a: str | None, b: str | None, level: str) -> None:
    assert date(a, b) == level
    assert date(b, a) == level


def test_sex_and_birth_place() -> None:
    assert cmp.compare_sex(feat(sex="female"), feat(sex="female")) == "exact"
    assert cmp.compare_sex(feat(sex="female"), feat(sex="male")) == "different"
    assert cmp.compare_sex(feat(sex=None), feat(sex="male")) == "missing"
    place = cmp.compare_birth_place
    assert place(feat(birth_place="Esch-sur-Alzette"), feat(birth_place="ESCH SUR ALZETTE")) == "exact"
    assert place(feat(birth_place="Esch-sur-Alzette"), feat(birth_place="Esch")) == "close"
    assert place(feat(birth_place="Ettelbruck"), feat(birth_place="Ettelbrück")) == "exact"
    assert place(feat(birth_place="Ettelbruck"), feat(birth_place="Etelbruck")) == "close"
    assert place(feat(birth_place="Luxembourg"), feat(birth_place="Porto")) == "different"
    assert place(feat(birth_place=None), feat(birth_place="Porto")) == "missing"


HOME = {"lines": ("12, rue de la Gare",), "postal": "L-3236", "city": "Bettembourg"}


@pytest.mark.parametrize(
    ("other", "level"),
    [
        ({}, "exact"),
        ({"lines": ("rue de la Gare 12",), "postal": "3236"}, "exact"),
        ({"lines": ("12 rue de la Gar",)}, "close"),
        ({"lines": ("14, rue de la Gare",)}, "close"),
        ({"city": "Betembourg"}, "close"),
        ({"city": None}, "same_street"),
        ({"postal": "L-3238", "city": "Noertzange"}, "same_street"),
        ({"lines": ("3, route de Luxembourg",)}, "same_locality"),
        ({"lines": ()}, "same_locality"),
        ({"lines": ("3, route de Luxembourg",), "city": "Dudelange"}, "near"),
        ({"postal": "L-4001", "city": "Esch-sur-Alzette"}, "street_elsewhere"),
        ({"lines": ("3, route de Luxembourg",), "postal": "L-4001", "city": "Esch-sur-Alzette"}, "different"),
        ({"lines": (), "postal": None, "city": None, "country": None}, "missing"),
    ],
)
def test_joint_address_levels(other: dict[str, object], level: str) -> None:
    a = feat(**HOME)  # type: ignore[arg-type]
    b = feat(**{**HOME, **other})  # type: ignore[arg-type]
    assert cmp.compare_joint_address(a, b) == level
    assert cmp.compare_joint_address(b, a) == level


def test_address_lines_in_the_other_order() -> None:
    a = feat(lines=("2 endeavour street", "burrendong estate"))
    b = feat(lines=("2 burrendong estate", "endeavour street"))
    assert cmp.compare_joint_address(a, b) == "exact"
    assert cmp.compare_complement(a, b) == "exact"
    assert cmp.compare_complement(a, feat(lines=("2 endeavour street",))) == "missing"


def test_region_only_counts_when_the_localities_differ() -> None:
    moved = feat(lines=("5 Saarstrasse",), postal="54290", city="Trier", country="DE")
    home = feat()
    assert describe(compare(home, moved))["region"] == "different"
    assert describe(compare(home, feat(country="Luxembourg")))["region"] == "missing"
    assert cmp.compare_region(feat(state="vic"), feat(state="nsw")) == "different"


@pytest.mark.parametrize(
    ("a", "b", "level"),
    [
        ("1974091186700", "1974091186700", "exact"),
        ("19740911867", "1974091186700", "old_form"),
        ("1974091186700", "1974091186800", "typo"),
        ("1974091186700", "1974091168700", "typo"),
        ("19740911867", "1974091186800", "typo"),
        ("1974091186700", "1982080285657", "different"),
        (None, "1982080285657", "missing"),
    ],
)
def test_matricule_levels(a: str | None, b: str | None, level: str) -> None:
    assert cmp.compare_matricule(feat(matricule=a), feat(matricule=b)) == level
    assert cmp.compare_matricule(feat(matricule=b), feat(matricule=a)) == level


def test_a_malformed_matricule_is_missing_not_different() -> None:
    assert feat(matricule="12345").matricule is None


def test_given_and_family_names_swapped() -> None:
    a, b = feat(family="Whiteley", given=("Ewan",)), feat(family="Ewan", given=("Whiteley",))
    levels = describe(compare(a, b))
    assert (levels["given"], levels["family"]) == ("close", "close")
    one_crossed = describe(compare(feat(family="Lodge", given=("Raquel",)), feat(family="Raquel", given=("Garnett",))))
    assert (one_crossed["given"], one_crossed["family"]) == ("close", "different")
    straight = describe(compare(feat(family="Schmit", given=("Anne",)), feat(family="Weber", given=("Paul",))))
    assert (straight["given"], straight["family"]) == ("different", "different")


def test_the_fast_vector_matches_the_generic_field_loop_and_is_symmetric() -> None:
    rng = random.Random(7)
    families = ["Schmit", "Schmitt", "Weber", "Da Silva Santos", "Santos", "Müller", "Mueller", None]
    givens = [("Jean",), ("Jean", "Marie"), ("Marie",), ("Anne",), ()]
    dates = ["1974-05-16", "1974-06-05", "1974", "1980-01-02", None]
    places = [("12, rue de la Gare",), ("rue de la Gare 14", "Résidence Les Pins"), ("Résidence Les Pins", "12 rue")]
    records = [
        prepare(
            person(
                f"r{i}",
                family=rng.choice(families),
                given=rng.choice(givens),
                born=rng.choice(dates),
                birth_family=rng.choice([None, "Weber", "Santos"]),
                sex=rng.choice(["male", "female", None]),
                lines=rng.choice(places),
                postal=rng.choice(["L-3236", "3236", "L-4001", None]),
                city=rng.choice(["Bettembourg", "Esch-sur-Alzette", None]),
                country=rng.choice(["LU", "FR", None]),
                matricule=rng.choice([None, "1974091186700", "19740911867"]),
            )
        )
        for i in range(60)
    ]
    for a in records:
        for b in records:
            vector = compare(a, b)
            assert vector == compare_by_fields(a, b)
            assert vector == compare(b, a)
            assert len(vector) == len(FIELDS) == len(FIELD_NAMES)
