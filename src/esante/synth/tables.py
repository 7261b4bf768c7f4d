"""The name and place tables (package data built by scripts/build_synth_data.py), loaded once per process."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from esante.synth.weighted import Weighted


@dataclass(frozen=True)
class NameTable:
    """Names of one origin, with their frequencies."""

    family: Weighted[str]
    given_male: Weighted[str]
    given_female: Weighted[str]
    particles: dict[str, str]  # surname -> particle usually written before it ("Silva" -> "da")


@dataclass(frozen=True)
class Town:
    """A place people live in: its postal code as the post writes it (``L-1930``, ``57100``, ``4700-001``)."""

    country: str  # ISO 3166-1 alpha-2
    city: str
    postal_codes: tuple[str, ...]
    commune: str | None = None  # Luxembourg only


@dataclass(frozen=True)
class CountryPlaces:
    towns: Weighted[Town]
    streets: tuple[str, ...]


@dataclass(frozen=True)
class PlaceTables:
    by_residence: dict[str, CountryPlaces]  # LU FR BE DE other
    lu_city_streets: tuple[tuple[str, str], ...]  # Luxembourg City streets with their own code
    other_streets: dict[str, tuple[str, ...]]  # country -> streets, for residents of other countries
    birth_places: dict[str, Weighted[tuple[str, str]]]  # origin -> (country, city)


def _load(name: str) -> Any:
    return json.loads((resources.files("esante.synth") / "data" / name).read_text(encoding="utf-8"))


@cache
def name_tables() -> dict[str, NameTable]:
    """Origin code (LU FR BE DE PT IT ES PL BK RO EN) -> its names."""
    data = _load("names.json")["origins"]
    return {
        origin: NameTable(
            family=Weighted((name, weight) for name, weight in table["family"]),
            given_male=Weighted((name, weight) for name, weight in table["given_male"]),
            given_female=Weighted((name, weight) for name, weight in table["given_female"]),
            particles=dict(table.get("particles", {})),
        )
        for origin, table in data.items()
    }


@cache
def place_tables() -> PlaceTables:
    data = _load("places.json")
    lu = data["LU"]
    by_residence = {
        "LU": CountryPlaces(
            Weighted(
                (Town("LU", entry["locality"], tuple(entry["postal_codes"]), entry["commune"]), entry["weight"])
                for entry in lu["localities"]
            ),
            tuple(lu["streets"]),
        )
    }
    for country in ("FR", "BE", "DE"):
        by_residence[country] = CountryPlaces(
            Weighted((Town(country, city, (code,)), weight) for city, code, weight in data[country]["towns"]),
            tuple(data[country]["streets"]),
        )
    other = data["other"]
    by_residence["other"] = CountryPlaces(
        Weighted((Town(country, city, (code,)), weight) for country, city, code, weight in other["towns"]), ()
    )
    return PlaceTables(
        by_residence=by_residence,
        lu_city_streets=tuple((street, code) for street, code in lu["city_streets"]),
        other_streets={country: tuple(streets) for country, streets in other["streets"].items()},
        birth_places={
            origin: Weighted(((country, city), weight) for country, city, weight in places)
            for origin, places in data["birth_places"].items()
        },
    )
