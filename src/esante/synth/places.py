"""Addresses by country of residence and birth places by origin."""

from __future__ import annotations

import random

from esante.synth.model import Address
from esante.synth.tables import PlaceTables

#: countries where the house number is written before the street
_NUMBER_FIRST = frozenset({"LU", "FR", "GB", "IE", "US"})


def house_number(rng: random.Random) -> str:
    number = 1 + int(rng.random() ** 2 * 150)  # low numbers are more frequent
    return f"{number}{'A' if rng.random() < 0.03 else ''}"


def home_address(rng: random.Random, residence: str, tables: PlaceTables) -> Address:
    places = tables.by_residence[residence]
    town = places.towns.pick(rng)
    number = house_number(rng)
    code = town.postal_codes[0] if len(town.postal_codes) == 1 else rng.choice(town.postal_codes)
    if town.country == "LU" and town.city == "Luxembourg" and rng.random() < 0.5:
        street, code = rng.choice(tables.lu_city_streets)
    elif residence == "other":
        street = rng.choice(tables.other_streets[town.country])
    else:
        street = rng.choice(places.streets)
    if town.country == "LU":
        line = f"{number}, {street}"
    elif town.country in _NUMBER_FIRST:
        line = f"{number} {street}"
    else:
        line = f"{street} {number}"
    return Address(line, town.city, code, town.country)


#: country of residence -> the birth-place table of that country
_RESIDENCE_BIRTH = {"LU": "LU", "FR": "FR", "BE": "BE", "DE": "DE"}


def birth_place(
    rng: random.Random, origin: str, residence: str, age: int, tables: PlaceTables, born_in_residence_rate: float
) -> tuple[str, str]:
    """Where the person was born: their origin's country, or (second generation) their country of residence."""
    local = _RESIDENCE_BIRTH.get(residence)
    if local and origin != local:
        rate = min(0.9, born_in_residence_rate * (1.8 if age < 18 else 1.0))
        if rng.random() < rate:
            return tables.birth_places[local].pick(rng)
    return tables.birth_places[origin].pick(rng)
