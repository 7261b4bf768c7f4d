"""The identity record the matching engine compares: the MPI's traits, nothing else.

A plain value object so the engine stays pure: the service builds it from a FHIR Patient (``esante.mpi.matching.fhir``),
an HL7 v2 PID segment or a CSV line, and the engine never needs to know which. Values are kept as written (accents,
case, particles): normalisation belongs to the comparison (``features``), so a record can be shown to an
identity-vigilance agent exactly as it was received.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass

SEXES = ("male", "female", "other")


class RecordError(ValueError):
    """An identity trait that cannot be understood; the message names the trait."""


@dataclass(frozen=True, slots=True)
class PartialDate:
    """A birth date whose month or day may be unknown (0), as in Luxembourg matricules (``19740000``).

    Year-only and year-month dates come from FHIR (``1974``, ``1974-09``) and from registers that never knew the day.
    The comparison treats an unknown part as neither agreeing nor disagreeing.
    """

    year: int
    month: int = 0
    day: int = 0

    def __post_init__(self) -> None:
        if not 1800 <= self.year <= 2200:
            raise RecordError(f"birth year {self.year} is not plausible")
        if not 0 <= self.month <= 12:
            raise RecordError(f"birth month {self.month} does not exist")
        if self.month == 0 and self.day:
            raise RecordError("a birth date with a day needs a month")
        limit = calendar.monthrange(self.year, self.month)[1] if self.month else 31
        if not 0 <= self.day <= limit:
            raise RecordError(f"birth date has no day {self.day} in that month")

    @property
    def complete(self) -> bool:
        return self.month != 0 and self.day != 0

    @property
    def digits(self) -> str:
        """``YYYYMMDD`` with ``00`` for unknown parts (the matricule's convention)."""
        return f"{self.year:04d}{self.month:02d}{self.day:02d}"

    @classmethod
    def parse(cls, text: str) -> PartialDate:
        """Read ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD`` (FHIR) or ``YYYYMMDD`` with ``00`` parts (matricule style)."""
        value = text.strip()
        parts: list[str]
        if "-" in value:
            parts = value.split("-")
            if len(parts) > 3 or not all(part.isascii() and part.isdigit() for part in parts):
                raise RecordError(f"birth date {value!r} is not YYYY, YYYY-MM or YYYY-MM-DD")
        elif value.isascii() and value.isdigit() and len(value) in (4, 6, 8):
            parts = [value[:4], value[4:6], value[6:8]]
            parts = [part for part in parts if part]
        else:
            raise RecordError(f"birth date {value!r} is not YYYY, YYYY-MM, YYYY-MM-DD or YYYYMMDD")
        if len(parts[0]) != 4 or any(len(part) != 2 for part in parts[1:]):
            raise RecordError(f"birth date {value!r} is not YYYY, YYYY-MM or YYYY-MM-DD")
        numbers = [int(part) for part in parts] + [0, 0]
        return cls(numbers[0], numbers[1], numbers[2])


@dataclass(frozen=True, slots=True)
class Address:
    """A postal address: FHIR Address's lines, postal code, city, state and country as written."""

    lines: tuple[str, ...] = ()
    postal_code: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None

    @property
    def empty(self) -> bool:
        return not (any(self.lines) or self.postal_code or self.city or self.state or self.country)


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    """One identity's traits (PLATFORM.md "MPI"): every trait but ``id`` may be missing.

    ``family`` is the current (used) family name, ``birth_family`` the birth (maiden) name when it differs or is
    known; ``given`` keeps the order of the given names because the first one is what people use. ``matricule``
    holds the digits only (13, or 11 in the old form); the engine does not validate it, the service does.
    """

    id: str
    family: str | None = None
    birth_family: str | None = None
    given: tuple[str, ...] = ()
    birth_date: PartialDate | None = None
    sex: str | None = None
    birth_place: str | None = None
    address: Address | None = None
    matricule: str | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise RecordError("an identity record needs an id")
        if self.sex is not None and self.sex not in SEXES:
            raise RecordError(f"sex {self.sex!r} is not one of {', '.join(SEXES)} (unknown is None)")
