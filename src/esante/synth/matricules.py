"""Unique, valid matricules for generated persons, deterministic for a seed.

Model (ours): a matricule is ``YYYYMMDD`` + a 3-digit sequence + Luhn + Verhoeff over the first 11 digits
(esante.identifiers.matricule). For persons born before 2014 the sequence is the 2-digit order of the old
11-digit form (odd for men, even for women) followed by its check digit, so the old form is the first 11 digits
of the current one; the old check digit is computed here as a weighted sum mod 11 (the real algorithm is not in
our sources, and the platform's validator does not check it). For later births the sequence is any of 000-999.

Uniqueness without remembering every number: each (date, sex class) walks its sequence space with a stride
coprime to its size from a date-dependent offset, so the k-th person born that day gets the k-th distinct
value. Memory is one counter per birth date seen (about 40,000 for a century of dates), whatever the count.
"""

from __future__ import annotations

from esante.identifiers.checkdigits import luhn_digit, verhoeff_digit

NEW_FORM_FROM = 2014  # first birth year without an old-form number
_ODD = tuple(range(1, 100, 2))  # 50 orders for men
_EVEN = tuple(range(2, 100, 2))  # 49 orders for women
_OLD_WEIGHTS = (2, 7, 6, 5, 4, 3, 2, 7, 6, 5)


def old_check_digit(payload: str) -> str:
    """Our check digit of the old 11-digit form (10 digits in, weighted mod 11, 10 written as 0)."""
    total = 0
    for ch, weight in zip(payload, _OLD_WEIGHTS, strict=True):
        total += (ord(ch) - 48) * weight
    return str((11 - total % 11) % 11 % 10)


def full_form(payload11: str) -> str:
    return payload11 + luhn_digit(payload11) + verhoeff_digit(payload11)


class MatriculeAllocator:
    """Hands out unique matricules per birth date; ``None`` when that date's sequence space is used up."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._used: dict[tuple[str, int], int] = {}

    def allocate(self, birth_digits: str, sex: str) -> str | None:
        """A new 13-digit matricule for someone born on ``birth_digits`` (YYYYMMDD, 00 allowed)."""
        year = int(birth_digits[:4])
        if year >= NEW_FORM_FROM:
            key = (birth_digits, 2)
            size, stride = 1000, 337
        else:
            key = (birth_digits, 1 if sex == "male" else 0)
            size, stride = (len(_ODD), 7) if sex == "male" else (len(_EVEN), 3)
        taken = self._used.get(key, 0)
        if taken >= size:
            return None
        self._used[key] = taken + 1
        offset = (int(birth_digits) * 2654435761 + self._seed * 40503 + key[1]) % size
        slot = (offset + taken * stride) % size
        if year >= NEW_FORM_FROM:
            return full_form(f"{birth_digits}{slot:03d}")
        order = (_ODD if sex == "male" else _EVEN)[slot]
        payload10 = f"{birth_digits}{order:02d}"
        return full_form(payload10 + old_check_digit(payload10))

    @property
    def dates_seen(self) -> int:
        return len(self._used)


def old_form(matricule: str) -> str | None:
    """The old 11-digit form of a current matricule of someone born before 2014 (else None)."""
    if len(matricule) == 13 and int(matricule[:4]) < NEW_FORM_FROM:
        return matricule[:11]
    return None
