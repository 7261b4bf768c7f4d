"""Check-digit algorithms used by Luxembourg identifiers: Luhn (mod 10) and Verhoeff (dihedral group D5).

Luhn catches every single-digit error and most adjacent transpositions; Verhoeff catches all of both. The
matricule carries one of each, computed over the same digits, so a typo is caught twice over.
"""

from __future__ import annotations

# Verhoeff tables: multiplication in D5, the position permutation, and the inverse.
_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)
_INV = (0, 4, 3, 2, 1, 5, 6, 7, 8, 9)


def _digits(payload: str) -> list[int]:
    if not payload or not payload.isascii() or not payload.isdigit():
        raise ValueError(f"expected decimal digits, got {payload!r}")
    return [int(ch) for ch in payload]


def luhn_digit(payload: str) -> str:
    """The Luhn check digit to append to ``payload`` (a string of digits)."""
    total = 0
    for position, digit in enumerate(reversed(_digits(payload))):
        if position % 2 == 0:  # the digit next to the (future) check digit is doubled
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def verhoeff_digit(payload: str) -> str:
    """The Verhoeff check digit to append to ``payload`` (a string of digits)."""
    check = 0
    for position, digit in enumerate(reversed(_digits(payload))):
        check = _D[check][_P[(position + 1) % 8][digit]]
    return str(_INV[check])
