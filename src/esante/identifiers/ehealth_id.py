"""The eHealthID: the unique identifier the professionals' directory (HPD) assigns to each professional.

Ten digits, the last one a Luhn check digit over the first nine. People write it with spaces or dashes
(``2854-1234-56``); the normalised form is the ten digits alone, which is what accounts and tokens carry.
The HPD draws new ones at random (:func:`new_ehealth_id`, first digit never 0, so the number keeps its ten digits
wherever it is typed) and keeps every number it ever assigned in its ledger (``hpd_ehealth_id``): never reused.
"""

from __future__ import annotations

import secrets

from esante.identifiers.checkdigits import luhn_digit

EHEALTH_ID_SYSTEM = "urn:oid:1.3.182.2.8.1"

_SEPARATORS = str.maketrans("", "", " -.")


class EHealthIdError(ValueError):
    """Not a valid eHealthID; the message says why."""


def parse_ehealth_id(text: str) -> str:
    """The normalised eHealthID (10 digits), or :class:`EHealthIdError` naming the problem."""
    value = text.strip().translate(_SEPARATORS)
    if len(value) != 10:
        raise EHealthIdError(f"an eHealthID has 10 digits, not {len(value)}")
    if not value.isascii() or not value.isdigit():
        raise EHealthIdError("an eHealthID has only digits")
    if value[9] != luhn_digit(value[:9]):
        raise EHealthIdError("the eHealthID's check digit (10th) is wrong")
    return value


def is_valid_ehealth_id(text: str) -> bool:
    try:
        parse_ehealth_id(text)
    except EHealthIdError:
        return False
    return True


def make_ehealth_id(prefix: str) -> str:
    """Append the check digit to nine digits: for test data and tools."""
    if len(prefix) != 9 or not prefix.isdigit():
        raise EHealthIdError("an eHealthID is built from nine digits")
    return prefix + luhn_digit(prefix)


def new_ehealth_id() -> str:
    """A fresh random eHealthID (the caller makes sure it was never assigned: the HPD's ledger)."""
    body = str(secrets.randbelow(900_000_000) + 100_000_000)
    return body + luhn_digit(body)
