"""The eSanté patient identifier: ten digits, random, Luhn-checked."""

from __future__ import annotations

import pytest

from esante.identifiers.esante_id import EsanteIdError, is_valid_esante_id, new_esante_id, parse_esante_id


def test_new_identifiers_are_valid_and_random() -> None:
    made = {new_esante_id() for _ in range(2000)}
    assert len(made) == 2000
    assert all(len(v) == 10 and v[0] != "0" and is_valid_esante_id(v) for v in made)


def test_a_typo_is_caught() -> None:
    value = new_esante_id()
    typo = value[:3] + str((int(value[3]) + 1) % 10) + value[4:]
    assert not is_valid_esante_id(typo)
    swapped = value[:3] + value[4] + value[3] + value[5:]
    assert value[3] == value[4] or not is_valid_esante_id(swapped)
    assert parse_esante_id(f" {value[:4]}-{value[4:]} ") == value


@pytest.mark.parametrize(
    ("text", "message"), [("123", "10 digits"), ("0234567897", "start with 0"), ("12345678a7", "only digits")]
)
def test_malformed_identifiers_are_refused(text: str, message: str) -> None:
    with pytest.raises(EsanteIdError, match=message):
        parse_esante_id(text)
