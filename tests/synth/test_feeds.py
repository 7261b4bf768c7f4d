"""Establishment feeds: exact sampling, ground truth consistent with the records, error rates, FHIR validity."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from dataclasses import replace

import orjson
import pytest

from esante.fhir.validation import validate_resource
from esante.identifiers.matricule import is_valid_matricule, parse_matricule
from esante.synth import (
    ERROR_RATES,
    FeedConfig,
    FeedRecord,
    FeedStats,
    Person,
    PopulationConfig,
    iter_feed_records,
    iter_persons,
)
from esante.synth.errors import ERROR_ORDER, family_parts
from esante.synth.typos import NEIGHBOURS, drop_accents, typo

POPULATION = PopulationConfig(count=20_000, seed=21)
FEEDS = FeedConfig(records=24_000, seed=21)
MATRICULE = "urn:oid:1.3.182.4.4"


@pytest.fixture(scope="module")
def people() -> dict[str, Person]:
    return {p.person_id: p for p in iter_persons(POPULATION)}


@pytest.fixture(scope="module")
def feed() -> tuple[list[FeedRecord], FeedStats]:
    stats = FeedStats()
    return list(iter_feed_records(iter_persons(POPULATION), POPULATION, FEEDS, stats)), stats


def within(observed: int, total: int, share: float, sigmas: float = 4.5) -> bool:
    tolerance = sigmas * math.sqrt(share * (1 - share) / total) + 0.5 / total
    return abs(observed / total - share) <= tolerance


def matricule_of(resource: dict) -> str | None:  # type: ignore[type-arg]
    values = [i["value"] for i in resource["identifier"] if i["system"] == MATRICULE]
    return values[0] if values else None


def test_exactly_the_requested_primary_records_and_the_extras_at_their_rates(
    feed: tuple[list[FeedRecord], FeedStats],
) -> None:
    records, stats = feed
    kinds = Counter(r.kind for r in records)
    assert kinds == stats.records
    assert kinds["primary"] == FEEDS.records
    assert within(kinds["duplicate"], FEEDS.records, FEEDS.duplicate_rate)
    assert within(kinds["unregistered"], FEEDS.records, FEEDS.unregistered_rate)
    assert within(kinds["collision"], FEEDS.records, FEEDS.collision_rate, sigmas=6)


def test_the_whole_population_is_consumed_and_records_are_deterministic() -> None:
    population = replace(POPULATION, count=3000)
    consumed = []

    def persons():  # type: ignore[no-untyped-def]
        for person in iter_persons(population):
            consumed.append(person.person_id)
            yield person

    config = replace(FEEDS, records=100)
    first = [(r.resource, r.person_id, r.errors) for r in iter_feed_records(persons(), population, config)]
    again = [
        (r.resource, r.person_id, r.errors) for r in iter_feed_records(iter_persons(population), population, config)
    ]
    assert len(consumed) == 3000 and first == again
    other = [r.resource for r in iter_feed_records(iter_persons(population), population, replace(config, seed=22))]
    assert other != [resource for resource, _, _ in first]


def test_asking_more_records_than_slots_is_refused() -> None:
    population = replace(POPULATION, count=10)
    with pytest.raises(ValueError, match=r"records must be 0\.\.30"):
        list(iter_feed_records(iter_persons(population), population, replace(FEEDS, records=31)))


def test_every_feed_patient_passes_fhir_validation_and_carries_no_truth(
    feed: tuple[list[FeedRecord], FeedStats],
) -> None:
    records, _ = feed
    for record in records[:4000] + [r for r in records if r.kind != "primary"]:
        validate_resource(record.resource, expected_type="Patient")
        text = orjson.dumps(record.resource).decode()
        assert record.person_id not in text and "id" not in record.resource
        assert record.resource["identifier"][0] == {
            "use": "usual",
            "system": record.domain.system,
            "value": record.local_id,
        }
        assert record.domain.system.startswith("urn:oid:1.3.182.3.1.1.") and record.domain.system.endswith(".2")


def test_local_ids_identify_one_person_per_domain_except_collisions(feed: tuple[list[FeedRecord], FeedStats]) -> None:
    records, _ = feed
    holder: dict[tuple[str, str], str] = {}
    for record in records:
        if record.kind != "collision":
            key = (record.domain.system, record.local_id)
            assert key not in holder, key
            holder[key] = record.person_id
    for record in records:
        if record.kind == "collision":
            assert holder[(record.domain.system, record.local_id)] == record.collides_with != record.person_id
    per_domain: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    for record in records:
        if record.kind in ("primary", "duplicate"):
            per_domain[(record.domain.system, record.person_id)].add(record.local_id)
    duplicated = [r for r in records if r.kind == "duplicate"]
    assert all(len(per_domain[(r.domain.system, r.person_id)]) == 2 for r in duplicated)


def test_truth_matches_the_records(feed: tuple[list[FeedRecord], FeedStats], people: dict[str, Person]) -> None:
    records, _ = feed
    clean = 0
    for record in records:
        if record.kind == "unregistered":
            assert record.person_id.startswith("U") and record.matricule is None
            assert matricule_of(record.resource) is None
            continue
        person = people[record.person_id]
        assert record.matricule == person.matricule
        resource, errors = record.resource, set(record.errors)
        name = resource["name"][0]
        if not errors:
            clean += 1
            assert name["family"].casefold() == person.family.casefold()
            assert tuple(name["given"]) == person.given
            assert resource["birthDate"] == person.birth_date_text and resource["gender"] == person.sex
            assert matricule_of(resource) == person.matricule
            assert resource["address"][0]["line"] == [person.address.line]
        if "maiden_for_married" in errors and not errors & {"typo_family", "accents_dropped"}:
            assert person.birth_family is not None
            assert name["family"].casefold() in {
                p.casefold() for p in [person.birth_family, *family_parts(person.birth_family)]
            }
        if "missing_matricule" in errors:
            assert matricule_of(resource) is None
        if "matricule_typo" in errors:
            typed = matricule_of(resource)
            assert typed != person.matricule and (person.old_matricule or not is_valid_matricule(typed or ""))
        if "matricule_old_form" in errors:
            typed = matricule_of(resource)
            assert typed == (person.matricule or "")[:11] and parse_matricule(typed).old
        if "day_month_swapped" in errors and "birth_date_typo" not in errors and "missing_birth_date" not in errors:
            year, month, day = person.birth_date_text.split("-")
            assert resource["birthDate"] == f"{year}-{day}-{month}"
        if "missing_birth_date" in errors:
            assert "birthDate" not in resource
        if "missing_gender" in errors:
            assert "gender" not in resource
        if "missing_address" in errors:
            assert "address" not in resource
        if "outdated_address" in errors and "missing_address" not in errors:
            assert resource["address"][0]["line"] != [person.address.line] or resource["address"][0]["city"] != (
                person.address.city
            )
        if "middle_names_missing" in errors:
            assert len(name["given"]) == 1 < len(person.given)
        if "typo_family" in errors:
            assert drop_accents(name["family"]).casefold() != drop_accents(person.family).casefold() or (
                "maiden_for_married" in errors or "compound_family_truncated" in errors
            )
        assert list(record.errors) == [e for e in ERROR_ORDER if e in errors]
    assert clean > 1000  # some records are clean (missing birth place excepted: an error)


@pytest.mark.parametrize("error", sorted(ERROR_RATES))
def test_error_rates_are_within_tolerance_of_the_configuration(
    error: str, feed: tuple[list[FeedRecord], FeedStats]
) -> None:
    records, stats = feed
    opportunities = stats.opportunities[error]
    assert opportunities > 1500, error
    assert within(stats.applied[error], opportunities, ERROR_RATES[error]), (error, stats.rate(error))
    if error != "uppercase":
        assert sum(error in r.errors for r in records) == stats.applied[error]


def test_rates_are_configurable() -> None:
    population = replace(POPULATION, count=2000)
    none = {error: 0.0 for error in ERROR_RATES}
    config = replace(FEEDS, records=1500, error_rates=none, duplicate_rate=0, collision_rate=0, unregistered_rate=0)
    records = list(iter_feed_records(iter_persons(population), population, config))
    assert len(records) == 1500 and not any(r.errors for r in records)
    always = replace(config, error_rates={**none, "typo_family": 1.0, "missing_gender": 1.0})
    records = list(iter_feed_records(iter_persons(population), population, always))
    assert all(r.errors == ("typo_family", "missing_gender") for r in records)


def test_a_typo_always_changes_the_name_in_the_expected_way() -> None:
    rng = random.Random(3)
    kinds = Counter()
    for _ in range(3000):
        name = rng.choice(["Schmit", "Gonçalves", "Weber", "Ferreira da Silva", "Müller-Kieffer"])
        keyboard = rng.choice(["qwertz", "azerty"])
        result, kind = typo(rng, name, keyboard)
        kinds[kind] += 1
        assert result != name
        if kind == "omission":
            assert len(result) == len(name) - 1
        elif kind == "double":
            assert len(result) == len(name) + 1
        elif kind == "transposition":
            assert sorted(result) == sorted(name)
        else:
            diff = [(a, b) for a, b in zip(name, result, strict=True) if a != b]
            assert len(diff) == 1
            if kind == "keyboard":
                before, after = diff[0]
                assert after.lower() in NEIGHBOURS[keyboard][drop_accents(before).lower()]
    assert set(kinds) == {"keyboard", "substitution", "transposition", "omission", "double"}
    with pytest.raises(ValueError):
        typo(rng, "Li")


def test_accents_are_dropped_the_ways_people_do() -> None:
    assert drop_accents("Gonçalves Müller Łukasz Jœuf Weiß") == "Goncalves Muller Lukasz Joeuf Weiss"
    assert drop_accents("Müller", umlaut_e=True) == "Mueller"


def test_family_parts_keep_particles_with_their_surname() -> None:
    assert family_parts("da Silva Ferreira") == ["da Silva", "Ferreira"]
    assert family_parts("Schmit-Weber") == ["Schmit", "Weber"]
    assert family_parts("Van den Berg") == ["Van den Berg"]
    assert family_parts("De Luca") == ["De Luca"]


def test_every_configured_error_is_applied_somewhere_in_the_order() -> None:
    assert set(ERROR_ORDER) == set(ERROR_RATES)
