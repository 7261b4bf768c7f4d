"""The certified population (national register, RNPP/CCSS): a deterministic stream of persons.

:func:`iter_persons` yields one :class:`~esante.synth.model.Person` at a time (constant memory apart from the
matricule counters, one per birth date), the same sequence for the same configuration and seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import date

from esante.synth.birthdates import BirthDates, female_share
from esante.synth.config import PopulationConfig
from esante.synth.matricules import NEW_FORM_FROM, MatriculeAllocator, old_form
from esante.synth.model import Person
from esante.synth.names import family_name, given_names, married_name, married_probability, surname
from esante.synth.places import birth_place, home_address
from esante.synth.tables import name_tables, place_tables
from esante.synth.weighted import Weighted

_DATE_TRIES = 50


def population_rng(seed: int, stream: str) -> random.Random:
    """A named random stream of a seed: the population and the feeds never share (or shift) each other's draws."""
    return random.Random(f"esante-synth:{seed}:{stream}")


class PersonFactory:
    """Builds persons from the configured distributions; holds the matricule allocator (uniqueness)."""

    def __init__(self, config: PopulationConfig) -> None:
        self.config = config
        self.names = name_tables()
        self.places = place_tables()
        self.birth_dates = BirthDates(config.age_bands, config.reference_date)
        self.residences = Weighted.of(config.residence_shares)
        self.origins = {residence: Weighted.of(shares) for residence, shares in config.origin_shares.items()}
        self.given_counts = {
            origin: Weighted(zip((1, 2, 3), counts, strict=True)) for origin, counts in config.given_name_counts.items()
        }
        self.matricules = MatriculeAllocator(config.seed)

    def person(self, rng: random.Random, person_id: str, *, registered: bool = True) -> Person:
        """A new person; ``registered=False`` for someone the register does not know (no matricule)."""
        cfg = self.config
        residence = self.residences.pick(rng)
        origin = self.origins[residence].pick(rng)
        for _ in range(_DATE_TRIES):
            birth, precision = self._birth(rng)
            age = self.birth_dates.age(birth)
            sex = "female" if rng.random() < female_share(age) else "male"
            matricule = self._allocate(birth, precision, sex) if registered else None
            if matricule or not registered:
                break
        else:  # pragma: no cover - needs ~50 people per day and sex for 50 draws in a row
            raise RuntimeError("no free matricule after many birth dates: the population is too dense")
        birth_family = family_name(rng, self.names[origin], origin, cfg)
        return self._complete(rng, person_id, residence, origin, birth, precision, sex, birth_family, matricule)

    def twin(self, rng: random.Random, person_id: str, sibling: Person) -> Person | None:
        """A twin of ``sibling``: same birth family name, date, place and (if young) address; None if no number."""
        sex = "female" if rng.random() < 0.5 else "male"
        matricule = self._allocate(sibling.birth_date, sibling.birth_precision, sex)
        if matricule is None:
            return None
        person = self._complete(
            rng,
            person_id,
            sibling.residence,
            sibling.origin,
            sibling.birth_date,
            sibling.birth_precision,
            sex,
            sibling.birth_family or sibling.family,
            matricule,
            place=sibling.birth_place,
            avoid_given=sibling.given[0],
        )
        if self.birth_dates.age(sibling.birth_date) < 25:
            return replace(person, address=sibling.address)
        return person

    def _birth(self, rng: random.Random) -> tuple[date, str]:
        birth = self.birth_dates.draw(rng)
        if rng.random() < self.config.partial_birth_date_rate:
            if rng.random() < 0.7:
                return birth.replace(day=1), "month"
            return birth.replace(month=1, day=1), "year"
        return birth, "day"

    def _allocate(self, birth: date, precision: str, sex: str) -> str | None:
        month = birth.month if precision != "year" else 0
        day = birth.day if precision == "day" else 0
        return self.matricules.allocate(f"{birth.year:04d}{month:02d}{day:02d}", sex)

    def _complete(
        self,
        rng: random.Random,
        person_id: str,
        residence: str,
        origin: str,
        birth: date,
        precision: str,
        sex: str,
        birth_family: str,
        matricule: str | None,
        *,
        place: tuple[str, str] | None = None,
        avoid_given: str | None = None,
    ) -> Person:
        cfg = self.config
        table = self.names[origin]
        age = self.birth_dates.age(birth)
        given = given_names(rng, table, sex, self.given_counts[origin])
        for _ in range(20):  # twins are not given the same first name
            if given[0] != avoid_given:
                break
            given = given_names(rng, table, sex, self.given_counts[origin])
        family, maiden = birth_family, None
        if rng.random() < married_probability(sex, age, origin, cfg):
            spouse_origin = origin if rng.random() < 0.6 else self.origins[residence].pick(rng)
            spouse = surname(rng, self.names[spouse_origin])
            if spouse != birth_family:
                family, maiden = married_name(rng, birth_family, spouse, cfg), birth_family
        old = False
        if matricule and birth.year < NEW_FORM_FROM and rng.random() < cfg.old_matricule_rate:
            matricule, old = old_form(matricule), True
        return Person(
            person_id=person_id,
            family=family,
            birth_family=maiden,
            given=given,
            sex=sex,
            birth_date=birth,
            birth_precision=precision,
            birth_place=place or birth_place(rng, origin, residence, age, self.places, cfg.born_in_residence_rate),
            address=home_address(rng, residence, self.places),
            residence=residence,
            origin=origin,
            matricule=matricule,
            old_matricule=old,
        )


def person_id(index: int) -> str:
    """The true person id of the ``index``-th certified identity (0-based): its line in the NDJSON is index + 1."""
    return f"P{index:07d}"


def iter_persons(config: PopulationConfig) -> Iterator[Person]:
    """The certified population, one person at a time, deterministic for ``config`` (including its seed)."""
    factory = PersonFactory(config)
    rng = population_rng(config.seed, "population")
    previous: Person | None = None
    for index in range(config.count):
        current = None
        if previous is not None and rng.random() < config.twin_rate:
            current = factory.twin(rng, person_id(index), previous)
        if current is None:
            current = factory.person(rng, person_id(index))
        yield current
        previous = current
