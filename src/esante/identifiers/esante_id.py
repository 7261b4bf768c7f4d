"""The eSanté patient identifier (``urn:oid:1.3.182.2.4.2``): the MPI assigns one to every certified identity.

Ten digits: nine drawn at random (the first never 0, so the number keeps its ten digits wherever it is typed) and a
Luhn check digit, so that a mistyped identifier is caught before it finds somebody else. Random rather than
sequential: the number says nothing about when or in which order people were registered. The MPI keeps every
number it ever assigned (``mpi_esante_id``), so a number is never given twice, even after a merge or a deletion.
"""

from __future__ import annotations

import secrets

from esante.identifiers.checkdigits import luhn_digit

_SEPARATORS = str.maketrans("", "", " -.")


class EsanteIdError(ValueError):
    """Not a valid eSanté patient identifier; the message says why."""


def parse_esante_id(text: str) -> str:
    value = text.strip().translate(_SEPARATORS)
    if len(value) != 10:
        raise EsanteIdError(f"an eSanté patient identifier has 10 digits, not {len(value)}")
    if not value.isascii() or not value.isdigit() or value[0] == "0":
        raise EsanteIdError("an eSanté patient identifier has only digits and does not start with 0")
    if value[9] != luhn_digit(value[:9]):
        raise EsanteIdError("the eSanté patient identifier's check digit (10th) is wrong")
    return value


def is_valid_esante_id(text: str) -> bool:
    try:
        parse_esante_id(text)
    except EsanteIdError:
        return False
    return True


def new_esante_id() -> str:
    """A fresh random identifier (the caller makes sure it was never assigned)."""
    body = str(secrets.randbelow(900_000_000) + 100_000_000)
    return body + luhn_digit(body)
