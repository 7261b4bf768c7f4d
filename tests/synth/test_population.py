"""The certified population: determinism, valid unique matricules, distributions, FHIR validity."""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from dataclasses import replace

import pytest

from esante.fhir.validation import validate_resource
from esante.identifiers.matricule import parse_matricule
from esante.synth import Person, PopulationConfig, certified_patient, iter_persons
from esante.synth.birthdates import BirthDates
from esante.synth.config import AGE_BANDS, ORIGIN_SHARES, RESIDENCE_SHARES
from esante.synth.matricules import MatriculeAllocator, old_form
from esante.synth.weighted import Weighted

COUNT = 30_000
CONFIG = PopulationConfig(count=COUNT, seed=11)


@pytest.fixture(scope="module")
def people() -> list[Person]:
    return list(iter_persons(CONFIG))


def within(observed: int, total: int, share: float, sigmas: float = 4.5) -> bool:
    """``observed / total`` is within a few binomial standard deviations of ``share``."""
    tolerance = sigmas * math.sqrt(share * (1 - share) / total) + 0.5 / total
    return abs(observed / total - share) <= tolerance


def test_the_same_seed_gives_the_same_population_and_another_seed_another() -> None:
    first = [certified_patient(p) for p in iter_persons(PopulationConfig(count=500, seed=3))]
    again = [certified_patient(p) for p in iter_persons(PopulationConfig(count=500, seed=3))]
    other = [certified_patient(p) for p in iter_persons(PopulationConfig(count=500, seed=4))]
    assert first == again
    assert sum(a == b for a, b in zip(first, other, strict=True)) == 0


def test_a_smaller_count_is_a_prefix_of_a_larger_one() -> None:
    short = list(iter_persons(PopulationConfig(count=200, seed=5)))
    long = list(iter_persons(PopulationConfig(count=400, seed=5)))
    assert short == long[:200]
    assert [p.person_id for p in long[:3]] == ["P0000000", "P0000001", "P0000002"]


def test_every_matricule_passes_the_platform_validator_and_is_unique(people: list[Person]) -> None:
    seen = set()
    for person in people:
        assert person.matricule is not None
        parsed = parse_matricule(person.matricule)  # raises on a wrong Luhn or Verhoeff digit or date
        assert parsed.old == person.old_matricule
        assert person.matricule[:8] == person.birth_digits
        seen.add(person.matricule)
    assert len(seen) == COUNT


def test_old_forms_are_flagged_at_the_configured_rate_and_encode_the_sex(people: list[Person]) -> None:
    before_2014 = [p for p in people if p.birth_date.year < 2014]
    old = [p for p in before_2014 if p.old_matricule]
    assert not any(p.old_matricule for p in people if p.birth_date.year >= 2014)
    assert within(len(old), len(before_2014), CONFIG.old_matricule_rate)
    assert all(p.matricule is not None and len(p.matricule) == 11 for p in old)
    for person in before_2014:  # the old order: odd for men, even for women
        assert person.matricule is not None
        assert int(person.matricule[8:10]) % 2 == (1 if person.sex == "male" else 0)
        if not person.old_matricule:
            assert old_form(person.matricule) == person.matricule[:11]


def test_residence_follows_the_dsp_figures(people: list[Person]) -> None:
    counts = Counter(p.residence for p in people)
    assert set(counts) == set(RESIDENCE_SHARES)
    for residence, share in RESIDENCE_SHARES.items():
        assert within(counts[residence], COUNT, share), (residence, counts[residence] / COUNT)


def test_addresses_match_the_country_of_residence(people: list[Person]) -> None:
    formats = {"LU": r"L-\d{4}", "FR": r"\d{5}", "BE": r"\d{4}", "DE": r"\d{5}"}
    for person in people:
        address = person.address
        if person.residence == "other":
            assert address.country not in formats
        else:
            assert address.country == person.residence
            assert re.fullmatch(formats[person.residence], address.postal_code), address
        assert address.line and address.city


def test_origins_of_luxembourg_residents_follow_the_configuration(people: list[Person]) -> None:
    residents = [p for p in people if p.residence == "LU"]
    counts = Counter(p.origin for p in residents)
    total = sum(ORIGIN_SHARES["LU"].values())
    for origin, weight in ORIGIN_SHARES["LU"].items():
        assert within(counts[origin], len(residents), weight / total), origin


def test_ages_follow_the_pyramid(people: list[Person]) -> None:
    ages = BirthDates(AGE_BANDS, CONFIG.reference_date)
    total = sum(share for _, _, share in AGE_BANDS)
    counts: Counter[int] = Counter()
    for person in people:
        age = ages.age(person.birth_date)
        counts[next(i for i, (low, high, _) in enumerate(AGE_BANDS) if low <= age <= high)] += 1
    for i, (_, _, share) in enumerate(AGE_BANDS):
        assert within(counts[i], COUNT, share / total), AGE_BANDS[i]


def test_sexes_are_balanced(people: list[Person]) -> None:
    women = sum(p.sex == "female" for p in people)
    assert 0.48 < women / COUNT < 0.53


def test_married_names_follow_the_configured_rate_and_both_conventions(people: list[Person]) -> None:
    ages = BirthDates(AGE_BANDS, CONFIG.reference_date)
    german_women = [p for p in people if p.sex == "female" and p.origin == "DE" and ages.age(p.birth_date) >= 30]
    married = [p for p in german_women if p.birth_family]
    expected = CONFIG.married_name_rate * CONFIG.married_name_factor["DE"]
    observed = len(married) / len(german_women)
    sigma = math.sqrt(expected * (1 - expected) / len(german_women))
    # a spouse drawn with the same name leaves the name unchanged: a little under the configured rate
    assert expected - 0.02 - 4.5 * sigma <= observed <= expected + 4.5 * sigma, observed
    everyone_married = [p for p in people if p.birth_family]
    compound = [p for p in everyone_married if p.family.endswith(f"-{p.birth_family}")]
    assert within(len(compound), len(everyone_married), 1 - CONFIG.married_replace_share)
    assert all(p.family != p.birth_family for p in everyone_married)
    assert not any(p.birth_family for p in people if ages.age(p.birth_date) < 22)


def test_given_names_are_one_to_three_distinct_names(people: list[Person]) -> None:
    counts = Counter(len(p.given) for p in people)
    assert set(counts) <= {1, 2, 3} and counts[1] and counts[2] and counts[3]
    assert all(len(set(p.given)) == len(p.given) for p in people)


def test_twins_share_birth_name_date_and_place(people: list[Person]) -> None:
    twins = [
        (a, b)
        for a, b in itertools.pairwise(people)
        if a.birth_date == b.birth_date
        and (a.birth_family or a.family) == (b.birth_family or b.family)
        and a.birth_place == b.birth_place
    ]
    assert within(len(twins), COUNT, CONFIG.twin_rate, sigmas=6)
    assert all(a.matricule != b.matricule and a.given[0] != b.given[0] for a, b in twins)


def test_unknown_birth_days_give_partial_dates_and_zero_digits() -> None:
    config = replace(CONFIG, count=3000, partial_birth_date_rate=0.2)
    partial = [p for p in iter_persons(config) if p.birth_precision != "day"]
    assert within(len(partial), 3000, 0.2, sigmas=6)
    for person in partial:
        assert person.matricule is not None and parse_matricule(person.matricule)
        text = certified_patient(person)["birthDate"]
        if person.birth_precision == "month":
            assert re.fullmatch(r"\d{4}-\d{2}", text) and person.matricule[6:8] == "00"
        else:
            assert re.fullmatch(r"\d{4}", text) and person.matricule[4:8] == "0000"


def test_every_certified_patient_passes_fhir_validation(people: list[Person]) -> None:
    sample = people[:3000] + [p for p in people if p.birth_family or p.old_matricule][:500]
    for person in sample:
        resource = certified_patient(person)
        validate_resource(resource, expected_type="Patient")
        assert "id" not in resource
        assert resource["identifier"] == [
            {"use": "official", "system": "urn:oid:1.3.182.4.4", "value": person.matricule}
        ]
        uses = [name["use"] for name in resource["name"]]
        assert uses == (["official", "maiden"] if person.birth_family else ["official"])
        assert resource["extension"][0]["url"] == "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"


def test_the_allocator_never_repeats_and_says_when_a_date_is_full() -> None:
    allocator = MatriculeAllocator(seed=1)
    recent = [allocator.allocate("20200229", "female") for _ in range(1001)]
    assert recent[-1] is None and len(set(recent[:-1])) == 1000
    men = [allocator.allocate("19700101", "male") for _ in range(51)]
    women = [allocator.allocate("19700101", "female") for _ in range(50)]
    assert men[-1] is None and women[-1] is None
    numbers = [m for m in men[:-1] + women[:-1] if m]
    assert len(set(numbers)) == 99 and all(parse_matricule(m) for m in numbers)


def test_weighted_tables_draw_in_proportion_and_refuse_empty_tables() -> None:
    import random

    table = Weighted([("a", 1), ("b", 3), ("c", 0)])
    rng = random.Random(2)
    draws = Counter(table.pick(rng) for _ in range(20_000))
    assert set(draws) == {"a", "b"} and within(draws["b"], 20_000, 0.75)
    assert table.share("b") == 0.75
    with pytest.raises(ValueError, match="positive weight"):
        Weighted([("a", 0)])
