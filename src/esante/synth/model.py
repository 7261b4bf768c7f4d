"""A synthetic person as the national register knows them: the TRUE traits that feeds are measured against."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class Address:
    line: str
    city: str
    postal_code: str
    country: str  # ISO 3166-1 alpha-2


@dataclass(frozen=True, slots=True)
class Person:
    """One certified identity (or, with ``matricule`` None, a person the register does not know)."""

    person_id: str  # "P0000042" = line 43 of the certified NDJSON; "U…" for a person absent from the register
    family: str  # current family name: the married name when the person took one
    birth_family: str | None  # the birth (maiden) name when it differs from ``family``
    given: tuple[str, ...]
    sex: str  # FHIR gender: male | female
    birth_date: date  # day 1 / month 1 stand in for an unknown day / month (see ``birth_precision``)
    birth_precision: str  # day | month | year
    birth_place: tuple[str, str]  # (country, city)
    address: Address
    residence: str  # LU FR BE DE other
    origin: str  # origin of the names: LU FR BE DE PT IT ES PL BK RO EN
    matricule: str | None  # 13 digits, or the old 11-digit form when ``old_matricule``
    old_matricule: bool = False

    @property
    def birth_date_text(self) -> str:
        """The FHIR ``birthDate``: ``YYYY-MM-DD``, or ``YYYY-MM`` / ``YYYY`` when the day / month is unknown."""
        text = self.birth_date.isoformat()
        return {"day": text, "month": text[:7], "year": text[:4]}[self.birth_precision]

    @property
    def birth_digits(self) -> str:
        """``YYYYMMDD`` as in the matricule, with ``00`` for an unknown month or day."""
        d = self.birth_date
        month = d.month if self.birth_precision != "year" else 0
        day = d.day if self.birth_precision == "day" else 0
        return f"{d.year:04d}{month:02d}{day:02d}"
