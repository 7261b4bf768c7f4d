"""Helpers for the matching-engine tests: compact record builders."""

from __future__ import annotations

from functools import lru_cache

from esante.mpi.matching import (
    Address,
    Features,
    IdentityRecord,
    ParameterSet,
    PartialDate,
    estimate_parameters,
    prepare,
    record_from_fhir,
)


def person(
    rid: str = "r1",
    family: str | None = "Schmit",
    given: tuple[str, ...] = ("Jean",),
    born: str | None = "1974-05-16",
    *,
    birth_family: str | None = None,
    sex: str | None = "male",
    birth_place: str | None = None,
    lines: tuple[str, ...] = ("12, rue de la Gare",),
    postal: str | None = "L-3236",
    city: str | None = "Bettembourg",
    state: str | None = None,
    country: str | None = "LU",
    matricule: str | None = None,
) -> IdentityRecord:
    address = Address(lines=lines, postal_code=postal, city=city, state=state, country=country)
    return IdentityRecord(
        id=rid,
        family=family,
        birth_family=birth_family,
        given=given,
        birth_date=PartialDate.parse(born) if born else None,
        sex=sex,
        birth_place=birth_place,
        address=None if address.empty else address,
        matricule=matricule,
    )


def feat(**kwargs: object) -> Features:
    return prepare(person(**kwargs))  # type: ignore[arg-type]


@lru_cache(maxsize=1)
def synthetic_linkage(
    count: int = 3000, feeds: int = 800
) -> tuple[list[IdentityRecord], list[IdentityRecord], dict[str, str]]:
    """A small Luxembourg-like certified population and establishment feeds (``esante.synth``, seeded), with the
    truth: local record id -> certified record id (absent for persons who are not in the register)."""
    from esante.synth import FeedConfig, PopulationConfig, certified_patient, iter_feed_records, iter_persons

    population = PopulationConfig(count=count, seed=11)
    persons = list(iter_persons(population))
    certified = [record_from_fhir(certified_patient(p), f"P{i:07d}") for i, p in enumerate(persons)]
    records = list(iter_feed_records(persons, population, FeedConfig(records=feeds, seed=11)))
    local = [record_from_fhir(r.resource, f"L{k}") for k, r in enumerate(records)]
    truth = {f"L{k}": r.person_id for k, r in enumerate(records) if r.person_id.startswith("P")}
    return certified, local, truth


@lru_cache(maxsize=1)
def trained_parameters() -> ParameterSet:
    certified, local, _ = synthetic_linkage()
    return estimate_parameters(certified, local, seed=0, created="2025-01-01T00:00:00+00:00")
