"""The matricule (13 digits: birth date, sequence, Luhn + Verhoeff over the first 11) and the eHealthID checks."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esante.identifiers.checkdigits import luhn_digit, verhoeff_digit
from esante.identifiers.ehealth_id import EHealthIdError, is_valid_ehealth_id, make_ehealth_id, parse_ehealth_id
from esante.identifiers.matricule import MatriculeError, is_valid_matricule, make_matricule, parse_matricule

VALID = ["2015123101725", "2014082601689", "1974091186700", "1982080285657", "1893120105732"]


@pytest.mark.parametrize("value", VALID)
def test_published_examples_are_valid(value: str) -> None:
    parsed = parse_matricule(value)
    assert parsed.value == value and not parsed.old
    assert is_valid_matricule(value, allow_old=False)


def test_separators_are_ignored_and_the_birth_date_is_read() -> None:
    parsed = parse_matricule(" 1982 0802 856 57 ")
    assert parsed.value == "1982080285657" and parsed.birth_date == (1982, 8, 2)


def test_unknown_month_and_day_may_be_zero() -> None:
    value = make_matricule("19500000", 123)
    assert parse_matricule(value).birth_date == (1950, 0, 0)
    assert parse_matricule(make_matricule("19501200", 1)).birth_date == (1950, 12, 0)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2015123101735", "Luhn"),  # 12th digit changed
        ("2015123101726", "Verhoeff"),  # 13th digit changed
        ("2015123101752", "Luhn"),  # the two check digits swapped
        ("201512310172", "13 digits"),
        ("20151231017250", "13 digits"),
        ("2015123l01725", "only digits"),
        ("", "13 digits"),
        ("2015133101725", "month 13"),
        ("2015023001725", "no day 30"),
        ("1700010100000", "birth year"),
    ],
)
def test_invalid_matricules_are_refused_with_the_reason(value: str, message: str) -> None:
    with pytest.raises(MatriculeError, match=message):
        parse_matricule(value)
    assert not is_valid_matricule(value)


def test_any_single_digit_change_is_caught() -> None:
    for value in VALID:
        for position in range(8, 13):  # sequence and check digits (a date change may still be a date)
            for digit in "0123456789":
                if digit != value[position]:
                    changed = value[:position] + digit + value[position + 1 :]
                    assert not is_valid_matricule(changed), changed


def test_adjacent_transpositions_are_caught() -> None:
    for value in VALID:
        for position in range(8, 12):
            swapped = value[:position] + value[position + 1] + value[position] + value[position + 2 :]
            if swapped != value:
                assert not is_valid_matricule(swapped), swapped


def test_the_old_eleven_digit_form_is_accepted_and_flagged() -> None:
    parsed = parse_matricule("19820802856")
    assert parsed.old and parsed.value == "19820802856"
    assert is_valid_matricule("19820802856") and not is_valid_matricule("19820802856", allow_old=False)
    with pytest.raises(MatriculeError, match="month"):
        parse_matricule("19821402856")


@given(st.dates(min_value=datetime.date(1800, 1, 1)), st.integers(0, 999))
def test_built_matricules_round_trip(date: datetime.date, sequence: int) -> None:
    birth = date.strftime("%Y%m%d")
    assert parse_matricule(make_matricule(birth, sequence)).value[:8] == birth


def test_check_digit_algorithms_on_reference_values() -> None:
    assert luhn_digit("7992739871") == "3"  # the textbook Luhn example
    assert verhoeff_digit("236") == "3"  # the textbook Verhoeff example
    with pytest.raises(ValueError):
        luhn_digit("12a")


# ---------------------------------------------------------------- eHealthID
def test_ehealth_id_with_its_luhn_digit() -> None:
    value = make_ehealth_id("285412345")
    assert len(value) == 10 and parse_ehealth_id(value) == value
    assert parse_ehealth_id(f"{value[:4]}-{value[4:8]}-{value[8:]}") == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("123456789", "10 digits"),
        ("12345678901", "10 digits"),
        ("12345abc90", "only digits"),
        ("12345678 9x", "only digits"),
        ("", "10 digits"),
    ],
)
def test_ehealth_id_malformed(value: str, message: str) -> None:
    with pytest.raises(EHealthIdError, match=message):
        parse_ehealth_id(value)


def test_ehealth_id_wrong_check_digit() -> None:
    value = make_ehealth_id("285412345")
    wrong = value[:9] + str((int(value[9]) + 1) % 10)
    with pytest.raises(EHealthIdError, match="check digit"):
        parse_ehealth_id(wrong)
    assert not is_valid_ehealth_id(wrong) and is_valid_ehealth_id(value)
