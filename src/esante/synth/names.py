"""Family and given names by origin, and the name change at marriage."""

from __future__ import annotations

import random

from esante.synth.config import PopulationConfig
from esante.synth.tables import NameTable
from esante.synth.weighted import Weighted

IBERIAN = frozenset({"PT", "ES"})


def family_name(rng: random.Random, table: NameTable, origin: str, config: PopulationConfig) -> str:
    """One surname, or two (Iberian custom: mother's then father's; elsewhere both parents' since the 2000s)."""
    first = surname(rng, table)
    rate = config.double_surname_rate_iberian if origin in IBERIAN else config.double_surname_rate
    if rng.random() < rate:
        second = surname(rng, table)
        if second != first:
            return f"{first} {second}"
    return first


def surname(rng: random.Random, table: NameTable) -> str:
    """One surname of the table, with its usual particle ("da Silva") more often than not."""
    name = table.family.pick(rng)
    particle = table.particles.get(name)
    if particle and rng.random() < 0.6:
        return f"{particle} {name}"
    return name


def given_names(rng: random.Random, table: NameTable, sex: str, counts: Weighted[int]) -> tuple[str, ...]:
    """One to three distinct given names of the person's sex."""
    names = table.given_female if sex == "female" else table.given_male
    wanted = counts.pick(rng)
    chosen: list[str] = []
    for _ in range(wanted * 3):
        name = names.pick(rng)
        if name not in chosen:
            chosen.append(name)
            if len(chosen) == wanted:
                break
    return tuple(chosen)


def married_name(rng: random.Random, birth_family: str, spouse_family: str, config: PopulationConfig) -> str:
    """The usual name after marriage: the spouse's name alone, or the compound ``Spouse-Birth``.

    Both conventions are found in Luxembourg's registers: Germans take a common married name (Ehename), French
    women a "nom d'usage"; the compound form is the Belgian/Luxembourgish "épouse" usage written as one name.
    """
    if rng.random() < config.married_replace_share:
        return spouse_family
    return f"{spouse_family}-{birth_family}"


def married_probability(sex: str, age: int, origin: str, config: PopulationConfig) -> float:
    """The chance that a person of this sex, age and origin carries a married name (ramps up from 22 to 30)."""
    if age < 22:
        return 0.0
    if sex == "female":
        base = config.married_name_rate * config.married_name_factor.get(origin, 0.5)
    else:
        base = config.married_men_rate
    return base * (0.4 if age < 25 else 0.75 if age < 30 else 1.0)
