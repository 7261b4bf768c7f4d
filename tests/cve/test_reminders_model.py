"""What a reminder names and when (pure): the dose key, the reminding day, the text, who is not reminded; and, with
the packaged Luxembourg schedule over synthetic histories, that a dose's key does not move from one day to the next
(else a dose would be reminded again) and that an adult's 10-yearly booster is not reminded when it first counts."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, timedelta

import pytest

from esante.cve.engine import AdministeredDose, Patient, assess
from esante.cve.forecast import DueVaccination, due_vaccinations
from esante.cve.reminders_model import (
    TEXT_LIMIT,
    dose_key,
    is_remindable,
    notification_key,
    remind_from,
    reminder_text,
    to_remind,
)
from esante.cve.schedules import load_luxembourg_schedule


def due(
    group: str = "MMR",
    status: str = "due",
    number: int | None = 1,
    earliest: date | None = date(2026, 4, 1),
    recommended: date | None = date(2026, 4, 1),
    past_due: date | None = date(2026, 5, 28),
    series: str = "Standard",
) -> DueVaccination:
    return DueVaccination(group, series, status, number, earliest, recommended, past_due, None, ())


def test_dose_key_names_group_series_number_and_earliest_date() -> None:
    assert dose_key(due()) == "MMR|Standard|1|2026-04-01"
    assert dose_key(due(number=None, earliest=None)) == "MMR|Standard|-|-"
    assert dose_key(due(series="Risk")) != dose_key(due())
    assert len(dose_key(due(group="x" * 400))) == 255


def test_reminding_day_is_the_recommended_date_less_the_lead_never_before_the_earliest() -> None:
    booster = due("DTaP/Tdap/Td", earliest=date(2021, 1, 1), recommended=date(2026, 1, 1), past_due=None)
    assert remind_from(booster, 14) == date(2025, 12, 18)
    assert remind_from(booster, 0) == date(2026, 1, 1)
    close = due(earliest=date(2026, 4, 10), recommended=date(2026, 4, 15))
    assert remind_from(close, 14) == date(2026, 4, 10)  # not before it counts
    assert remind_from(due(recommended=None), 14) == date(2026, 4, 1)
    assert to_remind([booster], date(2024, 6, 1)) == ()  # due (it would count), not yet advised
    assert to_remind([booster], date(2025, 12, 18)) == (booster,)
    overdue = due(status="overdue", earliest=date(2020, 1, 1), recommended=date(2030, 1, 1))
    assert to_remind([overdue], date(2026, 1, 1)) == (overdue,)  # overdue: always


def test_text_names_each_dose_and_stays_within_the_limit() -> None:
    text = reminder_text([due(), due("Polio", "overdue", 3, past_due=date(2026, 3, 1))])
    assert "- MMR, dose 1: due from 2026-04-01, overdue from 2026-05-28" in text
    assert "- Polio, dose 3: overdue since 2026-03-01" in text
    risk = reminder_text([due("DTaP/Tdap/Td", series="Risk", earliest=date(2026, 2, 1), recommended=date(2026, 3, 1))])
    assert "DTaP/Tdap/Td (Risk), dose 1: due from 2026-02-01, recommended by 2026-03-01" in risk
    many = reminder_text([due(group=f"Group {i} " + "x" * 80) for i in range(60)])
    assert len(many) <= TEXT_LIMIT and "more" in many


def test_notification_key_depends_on_the_doses_not_their_order() -> None:
    a, b = dose_key(due()), dose_key(due("Polio"))
    assert notification_key("p1", [a, b]) == notification_key("p1", [b, a])
    assert notification_key("p1", [a]) != notification_key("p1", [a, b]) != notification_key("p2", [a, b])
    assert notification_key("p1", [a]).startswith("cve-reminder:Patient/p1:")


@pytest.mark.parametrize(
    ("patient", "expected"),
    [
        ({"birthDate": "2020-01-01"}, True),
        ({"active": False}, False),
        ({"deceasedBoolean": True}, False),
        ({"deceasedBoolean": False}, True),
        ({"deceasedDateTime": "2025-01-01"}, False),
    ],
)
def test_who_is_reminded(patient: dict[str, object], expected: bool) -> None:
    assert is_remindable(patient) is expected


CVX = ["146", "116", "133", "216", "163", "03", "94", "122", "130", "115", "140", "150", "208", "187", "62", "121"]


def test_keys_do_not_move_from_day_to_day_over_synthetic_histories() -> None:
    """Over 120 random histories and a year of weekly runs, a (patient, group, series, dose number) keeps one
    earliest date — except when the forecast moves to another series as the patient ages (checked: rare)."""
    data = load_luxembourg_schedule()
    rng = random.Random(7)
    start = date(2025, 9, 1)
    earliest: dict[tuple[int, str, str, int | None], set[date | None]] = defaultdict(set)
    for n in range(120):
        birth = start - timedelta(days=rng.randint(10, 80 * 365))
        days = (start - birth).days
        count = rng.randint(0, 6)
        given = [AdministeredDose(birth + timedelta(days=rng.randint(0, days)), rng.choice(CVX)) for _ in range(count)]
        doses = sorted(given, key=lambda d: d.date_administered)
        patient = Patient(birth, rng.choice("FM"), doses=tuple(doses))
        for week in range(0, 365, 7):
            on = start + timedelta(days=week)
            for item in due_vaccinations(assess(data, patient, on)):
                earliest[(n, item.vaccine_group, item.series_type, item.dose_number)].add(item.earliest)
    moved = [key for key, dates in earliest.items() if len(dates) > 1]
    assert len(earliest) > 300
    assert len(moved) <= len(earliest) // 50, moved  # under 2 %


def test_an_adults_ten_yearly_booster_is_reminded_at_ten_years_not_when_it_first_counts() -> None:
    data = load_luxembourg_schedule()
    last = date(2018, 3, 1)
    adult = Patient(
        date(1980, 3, 1),
        "F",
        doses=tuple(AdministeredDose(d, "130") for d in (date(1980, 5, 1), date(1980, 7, 1), date(1981, 3, 1),
                                                           date(1986, 3, 1), date(1996, 3, 1), date(2008, 3, 1), last)),
    )  # fmt: skip

    def groups(on: date) -> list[str]:
        return [d.vaccine_group for d in to_remind(due_vaccinations(assess(data, adult, on)), on)]

    assert "DTaP/Tdap/Td" not in groups(date(2024, 3, 1))  # 6 years on: it would count, it is not advised yet
    assert "DTaP/Tdap/Td" in groups(date(2028, 3, 1))  # 10 years on
