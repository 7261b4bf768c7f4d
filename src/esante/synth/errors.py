"""The error model of establishment feeds: how a local identity departs from the certified one.

Each error has a rate (``FeedConfig.error_rates``, defaults in ``config.ERROR_RATES``) that applies to the
records where the error is POSSIBLE (a swap needs two given names, a day/month transposition a day <= 12...),
so the measured rate is ``applied / opportunities`` (:class:`~esante.synth.feeds.FeedStats`). Errors are drawn
independently in the fixed order of :data:`ERROR_ORDER`; an earlier one can remove the opportunity for a later
one (middle names dropped leave no names to swap).
"""

from __future__ import annotations

import calendar
import random
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from esante.synth.config import Domain, PopulationConfig
from esante.synth.matricules import old_form
from esante.synth.model import Address, Person
from esante.synth.places import home_address
from esante.synth.tables import place_tables
from esante.synth.typos import can_typo, drop_accents, has_accents, typo

if TYPE_CHECKING:
    from esante.synth.feeds import FeedStats

ERROR_ORDER = (
    "maiden_for_married",
    "compound_family_truncated",
    "typo_family",
    "given_swapped",
    "middle_names_missing",
    "typo_given",
    "accents_dropped",
    "uppercase",
    "day_month_swapped",
    "birth_date_typo",
    "missing_birth_date",
    "missing_gender",
    "outdated_address",
    "missing_address",
    "missing_birth_place",
    "missing_matricule",
    "matricule_old_form",
    "matricule_typo",
)
#: format variations counted by the stats but not listed among a record's errors (a matcher must ignore them)
FORMATS = frozenset({"uppercase"})
#: share of establishments that also record the birth name of a married person
SENDS_MAIDEN_NAME = 0.5
_PARTICLES = frozenset({"da", "das", "de", "do", "dos", "del", "della", "di", "du", "des", "la", "le", "van", "von",
                        "den", "der", "ten", "zu"})  # fmt: skip


@dataclass(frozen=True, slots=True)
class LocalTraits:
    """The traits an establishment holds for a person (None = not recorded)."""

    family: str
    maiden: str | None
    given: tuple[str, ...]
    sex: str | None
    birth_date: str | None  # FHIR date text
    birth_place: tuple[str, str] | None
    address: Address | None
    matricule: str | None


def family_parts(family: str) -> list[str]:
    """The surnames of a compound family name, each with its particle: ``da Silva Ferreira`` -> 2 parts."""
    parts: list[str] = []
    pending = ""
    for word in family.replace("-", " ").split():
        if word.casefold() in _PARTICLES:
            pending = f"{pending}{word} "
        else:
            parts.append(pending + word)
            pending = ""
    if pending and parts:
        parts[-1] += " " + pending.strip()
    return parts


def apply_errors(
    rng: random.Random,
    person: Person,
    domain: Domain,
    rates: dict[str, float],
    population: PopulationConfig,
    stats: FeedStats,
) -> tuple[LocalTraits, tuple[str, ...]]:
    """The local identity of ``person`` at ``domain`` and the errors it carries."""
    applied: list[str] = []

    def draw(error: str, possible: bool) -> bool:
        if not possible:
            return False
        stats.opportunities[error] += 1
        if rng.random() < rates.get(error, 0.0):
            stats.applied[error] += 1
            if error not in FORMATS:
                applied.append(error)
            return True
        return False

    # names
    family, maiden = person.family, person.birth_family
    if draw("maiden_for_married", maiden is not None) and maiden is not None:
        family, maiden = maiden, None
    elif maiden is not None and rng.random() >= SENDS_MAIDEN_NAME:
        maiden = None
    parts = family_parts(family)
    if draw("compound_family_truncated", len(parts) >= 2):
        family = parts[0] if rng.random() < 0.5 else parts[-1]
    if draw("typo_family", can_typo(family)):
        family, _ = typo(rng, family, domain.keyboard)
    given = list(person.given)
    if draw("given_swapped", len(given) >= 2):
        i = rng.randrange(1, len(given))
        given[0], given[i] = given[i], given[0]
    if draw("middle_names_missing", len(given) >= 2):
        given = given[:1]
    typo_candidates = [i for i, name in enumerate(given) if can_typo(name)]
    if draw("typo_given", bool(typo_candidates)):
        i = typo_candidates[0] if rng.random() < 0.8 else rng.choice(typo_candidates)
        given[i], _ = typo(rng, given[i], domain.keyboard)
    if draw("accents_dropped", has_accents(family) or any(has_accents(g) for g in given)):
        umlaut_e = rng.random() < 0.4
        family = drop_accents(family, umlaut_e=umlaut_e)
        given = [drop_accents(g, umlaut_e=umlaut_e) for g in given]
        maiden = drop_accents(maiden, umlaut_e=umlaut_e) if maiden else None
    if draw("uppercase", True):
        family = family.upper()
        maiden = maiden.upper() if maiden else None

    # birth date and sex
    birth_text: str | None = person.birth_date_text
    born = person.birth_date
    exact = person.birth_precision == "day"
    if draw("day_month_swapped", exact and born.day <= 12 and born.day != born.month):
        born = born.replace(month=born.day, day=born.month)
        birth_text = born.isoformat()
    if draw("birth_date_typo", exact):
        born = _mistyped_date(rng, born, population.reference_date)
        birth_text = born.isoformat()
    if draw("missing_birth_date", True):
        birth_text = None
    sex: str | None = person.sex
    if draw("missing_gender", True):
        sex = None

    # address, birth place
    address: Address | None = person.address
    if draw("outdated_address", True):
        address = _previous_address(rng, person)
    if draw("missing_address", True):
        address = None
    place: tuple[str, str] | None = person.birth_place
    if draw("missing_birth_place", True):
        place = None

    # matricule
    matricule = person.matricule
    if draw("missing_matricule", matricule is not None):
        matricule = None
    elif draw("matricule_old_form", matricule is not None and old_form(matricule) is not None) and matricule:
        matricule = old_form(matricule)
    elif draw("matricule_typo", matricule is not None) and matricule:
        matricule = _mistyped_digits(rng, matricule)

    traits = LocalTraits(family, maiden, tuple(given), sex, birth_text, place, address, matricule)
    return traits, tuple(applied)


def _mistyped_date(rng: random.Random, born: date, reference: date) -> date:
    """One digit of the day, month or the year's last two digits changed; still a real date, not in the future."""
    text = born.strftime("%Y%m%d")
    for _ in range(30):
        pos = rng.choice((2, 3, 4, 5, 6, 7))
        digit = rng.choice([d for d in "0123456789" if d != text[pos]])
        candidate = text[:pos] + digit + text[pos + 1 :]
        year, month, day = int(candidate[:4]), int(candidate[4:6]), int(candidate[6:])
        if 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]:
            new = date(year, month, day)
            if new <= reference:
                return new
    return born.replace(day=born.day % 28 + 1)  # the day off by one or so: still a typo


def _mistyped_digits(rng: random.Random, matricule: str) -> str:
    """One digit of the first 11 changed: both check digits then disagree (Luhn and Verhoeff catch it)."""
    pos = rng.randrange(8, 11) if rng.random() < 0.6 else rng.randrange(0, 8)
    digit = rng.choice([d for d in "0123456789" if d != matricule[pos]])
    return matricule[:pos] + digit + matricule[pos + 1 :]


def _previous_address(rng: random.Random, person: Person) -> Address:
    """Where the person lived before the last move: usually the same country; cross-border residents often
    moved out of Luxembourg, Luxembourg residents sometimes came from across the border."""
    tables = place_tables()
    residence = person.residence
    if rng.random() < 0.25:
        residence = "LU" if residence != "LU" else rng.choice(("FR", "BE", "DE"))
    for _ in range(5):
        address = home_address(rng, residence, tables)
        if address != person.address:
            return address
    return address
