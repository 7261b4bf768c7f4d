"""esante.fhir.values: string normalisation, date ranges, number precision, reference parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esante.fhir.values import (
    MAX_MICROS,
    MIN_MICROS,
    normalize_string,
    number_range,
    parse_date_range,
    parse_reference,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(dt: datetime) -> int:
    return (dt - EPOCH) // timedelta(microseconds=1)


# ------------------------------------------------------------------ strings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Éloïse", "eloise"),
        ("STRAßE", "strasse"),
        ("  Jean   Paul\t\n", "jean paul"),
        ("Müller-Lüdenscheidt", "muller-ludenscheidt"),
        ("ﬁle", "file"),
        ("", ""),
    ],
)
def test_normalize_string_examples(text: str, expected: str) -> None:
    assert normalize_string(text) == expected


def test_normalize_string_cut_to_255() -> None:
    assert len(normalize_string("a" * 1000)) == 255


@given(st.text())
def test_normalize_string_idempotent_and_bounded(text: str) -> None:
    once = normalize_string(text)
    assert normalize_string(once) == once
    assert len(once) <= 255
    assert once == once.strip()
    assert "  " not in once


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzàâäçéèêëîïôöùûüÿñå -'", max_size=50))
def test_normalize_string_case_and_accent_insensitive(text: str) -> None:
    normed = normalize_string(text.upper())
    assert normed == normalize_string(text)
    assert normed.isascii()


# ------------------------------------------------------------------ dates


def test_year_range() -> None:
    lo, hi = parse_date_range("2020")
    assert lo == micros(datetime(2020, 1, 1, tzinfo=UTC))
    assert hi == micros(datetime(2021, 1, 1, tzinfo=UTC)) - 1


def test_month_and_day_ranges() -> None:
    assert parse_date_range("2020-02") == (
        micros(datetime(2020, 2, 1, tzinfo=UTC)),
        micros(datetime(2020, 3, 1, tzinfo=UTC)) - 1,
    )
    lo, hi = parse_date_range("2020-02-29")
    assert hi - lo + 1 == 86_400_000_000


def test_seconds_minutes_fractions_and_timezones() -> None:
    lo, hi = parse_date_range("2020-03-01T10:00:05")
    assert hi - lo + 1 == 1_000_000
    lo, hi = parse_date_range("2020-03-01T10:00")
    assert hi - lo + 1 == 60_000_000
    lo, hi = parse_date_range("2020-03-01T10:00:05.25Z")
    assert lo == micros(datetime(2020, 3, 1, 10, 0, 5, 250_000, tzinfo=UTC))
    assert hi - lo + 1 == 10_000
    assert parse_date_range("2020-03-01T11:00:00+01:00") == parse_date_range("2020-03-01T10:00:00Z")
    assert parse_date_range("2020-03-01T05:30:00-04:30") == parse_date_range("2020-03-01T10:00:00Z")
    # no timezone: UTC
    assert parse_date_range("2020-03-01T10:00:00") == parse_date_range("2020-03-01T10:00:00Z")


def test_extreme_years() -> None:
    lo, hi = parse_date_range("9999-12")
    assert lo < hi < MAX_MICROS
    lo, _ = parse_date_range("0001")
    assert lo > MIN_MICROS


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "20",
        "2020-13",
        "2020-00",
        "2021-02-29",
        "2020-02-30",
        "2020-1-1",
        "garbage",
        "2020-01-01T25:00",
        "2020-01-01T10:61",
        "2020-01-01T10:00:60",
        "2020-01-01T10:00+15:00",
        "2020-01-01 10:00",
        "0000",
    ],
)
def test_malformed_dates_raise(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_date_range(bad)


instants = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC))


@given(instants)
def test_instant_in_its_day_month_year(dt: datetime) -> None:
    point = micros(dt)
    day = f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}"
    for text in (day, day[:7], day[:4]):
        lo, hi = parse_date_range(text)
        assert lo <= point <= hi
    text = f"{day}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}.{dt.microsecond:06d}Z"
    assert parse_date_range(text) == (point, point)


@given(st.dates(min_value=datetime(1, 1, 1).date(), max_value=datetime(9999, 12, 30).date()))
def test_consecutive_days_adjacent(day: object) -> None:
    from datetime import date

    assert isinstance(day, date)
    nxt = day + timedelta(days=1)
    lo1, hi1 = parse_date_range(day.isoformat())
    lo2, hi2 = parse_date_range(nxt.isoformat())
    assert lo1 <= hi1 and lo2 <= hi2
    assert hi1 + 1 == lo2


@given(st.integers(min_value=1, max_value=9998), st.integers(min_value=1, max_value=12))
def test_consecutive_months_and_years_adjacent(year: int, month: int) -> None:
    _, hi = parse_date_range(f"{year:04d}-{month:02d}")
    ny, nm = (year + 1, 1) if month == 12 else (year, month + 1)
    lo, _ = parse_date_range(f"{ny:04d}-{nm:02d}")
    assert hi + 1 == lo
    assert parse_date_range(f"{year:04d}")[1] + 1 == parse_date_range(f"{year + 1:04d}")[0]


@given(st.text(max_size=30))
def test_garbage_raises_value_error_only(text: str) -> None:
    try:
        lo, hi = parse_date_range(text)
    except ValueError:
        return
    assert lo <= hi


# ------------------------------------------------------------------ numbers


def test_number_ranges() -> None:
    assert number_range("100") == (100.0, 99.5, 100.5)
    assert number_range("100.00") == pytest.approx((100.0, 99.995, 100.005))
    assert number_range("1e2") == (100.0, 50.0, 150.0)
    assert number_range("-3.5") == pytest.approx((-3.5, -3.55, -3.45))
    for bad in ("", "abc", "1,5", "nan", "inf", " 1", "1_000"):
        with pytest.raises(ValueError):
            number_range(bad)


# ------------------------------------------------------------------ references


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("Patient/123", ("Patient", "123", None, None)),
        ("Patient/123/_history/2", ("Patient", "123", "2", None)),
        ("http://x/fhir/Patient/123", ("Patient", "123", None, "http://x/fhir/Patient/123")),
        ("http://x/fhir/Patient/123/_history/4", ("Patient", "123", "4", "http://x/fhir/Patient/123")),
        (
            "urn:uuid:0d3b6f5e-1a2b-4c3d-8e9f-001122334455",
            (None, None, None, "urn:uuid:0d3b6f5e-1a2b-4c3d-8e9f-001122334455"),
        ),
        ("#contained", (None, None, None, None)),
        ("http://hl7.org/fhir/ValueSet/x|1.0", ("ValueSet", "x", None, "http://hl7.org/fhir/ValueSet/x")),
        ("not a reference", (None, None, None, None)),
    ],
)
def test_parse_reference(ref: str, expected: tuple[str | None, ...]) -> None:
    assert parse_reference(ref) == expected


def test_parse_reference_with_base() -> None:
    assert parse_reference("Patient/1", "https://h/fhir/") == (
        "Patient",
        "1",
        None,
        "https://h/fhir/Patient/1",
    )
