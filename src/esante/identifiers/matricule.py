"""The Luxembourg national identification number ("matricule", numéro d'identification national).

Current form, 13 digits: ``YYYYMMDD`` (birth date; month and day may be ``00`` when unknown) + a 3-digit sequence
+ a Luhn check digit + a Verhoeff check digit, both computed over the first 11 digits. The former 11-digit form
(birth date + sequence, no check digits) is still found on old records: it is accepted and flagged ``old`` so the
caller can ask for the current one.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass

from esante.identifiers.checkdigits import luhn_digit, verhoeff_digit

_SEPARATORS = str.maketrans("", "", " .-")


@dataclass(frozen=True)
class Matricule:
    """A checked matricule: ``value`` is its normalised digits (13, or 11 when ``old``)."""

    value: str
    old: bool

    @property
    def birth_date(self) -> tuple[int, int, int]:
        """(year, month, day); month or day 0 when unknown."""
        return int(self.value[:4]), int(self.value[4:6]), int(self.value[6:8])


class MatriculeError(ValueError):
    """Not a valid matricule; the message says what is wrong (never echoes more than the input given)."""


def normalize(text: str) -> str:
    """Remove the separators people type (spaces, dots, dashes)."""
    return text.strip().translate(_SEPARATORS)


def parse_matricule(text: str) -> Matricule:
    """Check ``text`` and return the normalised matricule, or raise :class:`MatriculeError` naming the problem."""
    value = normalize(text)
    if len(value) not in (11, 13):
        raise MatriculeError(f"a matricule has 13 digits (or 11 in the old form), not {len(value)}")
    if not value.isascii() or not value.isdigit():
        raise MatriculeError("a matricule has only digits")
    _check_date(value[:8])
    if len(value) == 11:
        return Matricule(value, old=True)
    payload = value[:11]
    if value[11] != luhn_digit(payload):
        raise MatriculeError("the matricule's Luhn check digit (12th) is wrong")
    if value[12] != verhoeff_digit(payload):
        raise MatriculeError("the matricule's Verhoeff check digit (13th) is wrong")
    return Matricule(value, old=False)


def is_valid_matricule(text: str, *, allow_old: bool = True) -> bool:
    try:
        parsed = parse_matricule(text)
    except MatriculeError:
        return False
    return allow_old or not parsed.old


def make_matricule(birth: str, sequence: int) -> str:
    """Build a current-form matricule from ``YYYYMMDD`` and a sequence (0-999): for test data and tools."""
    if not 0 <= sequence <= 999:
        raise MatriculeError("the sequence is 0 to 999")
    _check_date(birth)
    payload = f"{birth}{sequence:03d}"
    return payload + luhn_digit(payload) + verhoeff_digit(payload)


def _check_date(text: str) -> None:
    if len(text) != 8 or not text.isdigit():
        raise MatriculeError("a matricule starts with the birth date YYYYMMDD")
    year, month, day = int(text[:4]), int(text[4:6]), int(text[6:8])
    if year < 1800:
        raise MatriculeError(f"the matricule's birth year {year} is not plausible")
    if month > 12:
        raise MatriculeError(f"the matricule's birth month {month:02d} does not exist")
    limit = calendar.monthrange(year, month)[1] if month else 31
    if day > limit:
        raise MatriculeError(f"the matricule's birth date has no day {day:02d} in that month")
