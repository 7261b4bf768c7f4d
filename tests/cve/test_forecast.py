"""Forecasting (chapter 7), best-series selection (chapter 8) and vaccine-group rules (chapter 9) on small schedules."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from esante.cve.engine import AdministeredDose, Observation, Patient, SeriesStatus, SupportingData, assess
from tests.cve.schedules import Age, Condition, Dose, Interval, Series, Skip, antigen_xml, build, one_series

BIRTH = date(2024, 1, 1)


def group(data: SupportingData, patient: Patient, on: date, name: str = "Testitis"):  # type: ignore[no-untyped-def]
    forecasts = assess(data, patient, on).group(name)
    assert len(forecasts) == 1, forecasts
    return forecasts[0]


def infant_series(folder: Path, **extra: object) -> SupportingData:
    return one_series(
        folder,
        [
            Dose(Age("6 weeks - 4 days", "6 weeks", "2 months", "3 months", "5 years")),
            Dose(intervals=[Interval("4 weeks - 4 days", "4 weeks", "8 weeks", "12 weeks")]),
        ],
        **extra,
    )


def test_first_dose_dates_from_ages(tmp_path: Path) -> None:
    forecast = group(infant_series(tmp_path), Patient(BIRTH), date(2024, 1, 10))
    assert forecast.status is SeriesStatus.NOT_COMPLETE
    f = forecast.forecast
    assert f is not None
    assert (f.dose_number, f.earliest, f.recommended, f.past_due, f.latest) == (
        1,
        date(2024, 2, 12),  # FORECASTDT-1: minimum age 6 weeks
        date(2024, 3, 1),  # FORECASTDT-2: earliest recommended age 2 months
        date(2024, 3, 31),  # FORECASTDT-3: latest recommended age 3 months minus 1 day
        date(2028, 12, 31),  # FORECASTDT-4: maximum age 5 years minus 1 day
    )
    assert f.recommended_vaccines == ("901",)  # FORECASTRECVAC-1: preferable with forecast vaccine type 'Y'


def test_second_dose_dates_from_intervals(tmp_path: Path) -> None:
    patient = Patient(BIRTH, doses=(AdministeredDose(date(2024, 3, 1), "901"),))
    f = group(infant_series(tmp_path), patient, date(2024, 3, 1)).forecast
    assert f is not None
    assert (f.dose_number, f.earliest, f.recommended, f.past_due) == (
        2,
        date(2024, 3, 29),
        date(2024, 4, 26),
        date(2024, 5, 23),
    )


def test_recommended_and_past_due_never_before_earliest(tmp_path: Path) -> None:
    # Dose 2 is recommended at 4 months, past due at 6; dose 1 came late, at 11 months (FORECASTDT-5, -6).
    data = one_series(
        tmp_path,
        [
            Dose(Age(min="6 weeks")),
            Dose(Age(earliest_rec="4 months", latest_rec="6 months"), intervals=[Interval("24 days", "4 weeks")]),
        ],
    )
    late = Patient(BIRTH, doses=(AdministeredDose(date(2024, 12, 1), "901"),))
    f = group(data, late, date(2024, 12, 1)).forecast
    assert f is not None
    assert (f.unadjusted_recommended, f.unadjusted_past_due) == (date(2024, 5, 1), date(2024, 6, 30))
    assert f.earliest == f.recommended == f.past_due == date(2024, 12, 29)


def test_complete_series(tmp_path: Path) -> None:
    doses = (AdministeredDose(date(2024, 3, 1), "901"), AdministeredDose(date(2024, 5, 1), "901"))
    forecast = group(infant_series(tmp_path), Patient(BIRTH, doses=doses), date(2024, 6, 1))
    assert forecast.status is SeriesStatus.COMPLETE and forecast.forecast is None


def test_aged_out(tmp_path: Path) -> None:
    assert group(infant_series(tmp_path), Patient(BIRTH), date(2029, 1, 1)).status is SeriesStatus.AGED_OUT


def test_immunity_by_birth_date_and_by_history(tmp_path: Path) -> None:
    data = infant_series(tmp_path, immunity_birth_date="01/01/1957", immunity_codes=("999",))
    assert group(data, Patient(date(1950, 5, 5)), date(2024, 1, 1)).status is SeriesStatus.IMMUNE
    assert group(data, Patient(date(1960, 5, 5)), date(2024, 1, 1)).status is not SeriesStatus.IMMUNE
    immune = Patient(BIRTH, observations=(Observation("999"),))
    assert group(data, immune, date(2024, 3, 1)).status is SeriesStatus.IMMUNE


def test_antigen_contraindication(tmp_path: Path) -> None:
    data = infant_series(tmp_path, antigen_contraindications=("080",))
    patient = Patient(BIRTH, observations=(Observation("080"),))
    forecast = group(data, patient, date(2024, 3, 1))
    assert forecast.status is SeriesStatus.CONTRAINDICATED and forecast.forecast is None
    # A contraindication that ended before the assessment date no longer applies.
    past = Patient(BIRTH, observations=(Observation("080", end=date(2024, 2, 1)),))
    assert group(data, past, date(2024, 3, 1)).status is SeriesStatus.NOT_COMPLETE


def test_vaccine_contraindication(tmp_path: Path) -> None:
    patient = Patient(BIRTH, observations=(Observation("107"),))
    data = infant_series(tmp_path, vaccine_contraindications={"107": ["901"]})
    assert group(data, patient, date(2024, 3, 1)).status is SeriesStatus.CONTRAINDICATED


def seasonal(folder: Path, start: str = "20250901", end: str = "20260331") -> SupportingData:
    return one_series(folder, [Dose(Age(min="6 months"), season=(start, end), recurring=True)])


def forecast_of(data: SupportingData, on: date, *given: date) -> tuple[SeriesStatus, int | None, date | None]:
    patient = Patient(BIRTH, doses=tuple(AdministeredDose(d, "901") for d in given))
    g = group(data, patient, on)
    return g.status, g.forecast.dose_number if g.forecast else None, g.forecast.earliest if g.forecast else None


def test_seasonal_recommendation(tmp_path: Path) -> None:
    # FORECASTDTCAN-1: the seasonal start date; FORECASTDN-1: only doses from the seasonal start date count.
    data = seasonal(tmp_path)
    assert forecast_of(data, date(2025, 8, 1)) == (SeriesStatus.NOT_COMPLETE, 1, date(2025, 9, 1))
    assert forecast_of(data, date(2025, 11, 1), date(2025, 10, 1)) == (SeriesStatus.NOT_COMPLETE, 2, date(2025, 10, 1))


def test_season_in_progress_in_a_later_year(tmp_path: Path) -> None:
    # The data's 2025-26 season recurs: in December 2026 the 2026-27 season (from 1 Sep 2026) is in progress;
    # last season's dose no longer counts (FORECASTDN-1), this season's does.
    data = seasonal(tmp_path)
    on = date(2026, 12, 15)
    assert forecast_of(data, on) == (SeriesStatus.NOT_COMPLETE, 1, date(2026, 9, 1))
    assert forecast_of(data, on, date(2025, 10, 15)) == (SeriesStatus.NOT_COMPLETE, 1, date(2026, 9, 1))
    this_season = forecast_of(data, on, date(2025, 10, 15), date(2026, 10, 5))
    assert this_season == (SeriesStatus.NOT_COMPLETE, 2, date(2026, 10, 5))


def test_season_finished_means_next_years(tmp_path: Path) -> None:
    # Past the season's end (31 Mar 2026) the next season is forecast, not "past seasonal recommendation end date".
    data = seasonal(tmp_path)
    assert forecast_of(data, date(2026, 4, 1)) == (SeriesStatus.NOT_COMPLETE, 1, date(2026, 9, 1))
    assert forecast_of(data, date(2026, 4, 1), date(2025, 10, 1)) == (SeriesStatus.NOT_COMPLETE, 1, date(2026, 9, 1))


def test_assessment_before_the_datas_season_uses_an_earlier_years(tmp_path: Path) -> None:
    data = seasonal(tmp_path)
    assert forecast_of(data, date(2024, 5, 1)) == (SeriesStatus.NOT_COMPLETE, 1, date(2024, 9, 1))
    assert forecast_of(data, date(2024, 11, 15), date(2024, 10, 1)) == (
        SeriesStatus.NOT_COMPLETE,
        2,  # the 2024 dose is in the 2024-25 season
        date(2024, 10, 1),
    )


def test_season_to_the_end_of_february_includes_a_leap_day(tmp_path: Path) -> None:
    # 1 Sep 2025 - 28 Feb 2026 recurs as 1 Sep 2027 - 29 Feb 2028: on 29 Feb 2028 that season is in progress
    # (shifting 28 Feb itself would end it on 28 Feb 2028 and forecast from 1 Sep 2028).
    data = seasonal(tmp_path, end="20260228")
    assert forecast_of(data, date(2028, 2, 29)) == (SeriesStatus.NOT_COMPLETE, 1, date(2027, 9, 1))
    given = forecast_of(data, date(2028, 2, 29), date(2027, 9, 1))
    assert given == (SeriesStatus.NOT_COMPLETE, 2, date(2027, 9, 1))
    assert forecast_of(data, date(2028, 3, 1)) == (SeriesStatus.NOT_COMPLETE, 1, date(2028, 9, 1))


def test_past_a_seasonal_end_date_with_no_start_date(tmp_path: Path) -> None:
    # Table 7-10 still applies to a season that cannot recur: an end date and no start date.
    data = seasonal(tmp_path, start="")
    assert forecast_of(data, date(2026, 3, 31))[0] is SeriesStatus.NOT_COMPLETE
    assert group(data, Patient(BIRTH), date(2026, 4, 1)).status is SeriesStatus.NOT_RECOMMENDED


def test_forecast_skip_at_assessment_date(tmp_path: Path) -> None:
    skip = Skip("Forecast", [Condition("Age", begin_age="12 months")])
    data = one_series(tmp_path, [Dose(), Dose(intervals=[Interval("4 weeks", "4 weeks")], skips=[skip])])
    one = Patient(BIRTH, doses=(AdministeredDose(date(2024, 6, 1), "901"),))
    assert group(data, one, date(2024, 10, 1)).status is SeriesStatus.NOT_COMPLETE
    assert group(data, one, date(2025, 1, 1)).status is SeriesStatus.COMPLETE


def test_validate_recommendation_skips_a_dose_the_earliest_date_makes_unneeded(tmp_path: Path) -> None:
    # 7.6: at the assessment date dose 2 is needed, but by its earliest date (15 months) it would be skipped,
    # so the forecast is redone for dose 3.
    skip = Skip("Forecast", [Condition("Age", begin_age="15 months")])
    data = one_series(
        tmp_path,
        [
            Dose(),
            Dose(intervals=[Interval("8 weeks", "8 weeks")], skips=[skip]),
            Dose(intervals=[Interval("12 weeks", "12 weeks", from_previous=False, from_target_dose=1)]),
        ],
    )
    patient = Patient(BIRTH, doses=(AdministeredDose(date(2025, 2, 15), "901"),))  # at 13.5 months
    f = group(data, patient, date(2025, 2, 15)).forecast
    assert f is not None
    assert f.earliest == date(2025, 5, 10)  # dose 3: 12 weeks after dose 1, not dose 2's 8 weeks


def test_no_candidate_earliest_date_stays_empty(tmp_path: Path) -> None:
    # 7.5 / FORECASTDTCAN-1: a target dose with no minimum age, no applicable interval, no conflict, no season
    # and no dose evaluated has no candidate earliest date; it stays empty (it is not the assessment date).
    # The recommended date still follows FORECASTDT-2 (here the earliest recommended age).
    data = one_series(tmp_path, [Dose(Age(earliest_rec="7 months"))])
    f = group(data, Patient(BIRTH), date(2030, 5, 1)).forecast
    assert f is not None
    assert (f.earliest, f.recommended, f.past_due) == (None, date(2024, 8, 1), None)


def test_a_series_with_no_earliest_date_neither_starts_earliest_nor_is_completable(tmp_path: Path) -> None:
    # Table 8-11 on the shape of Meningococcal ACWY (4.64) for a 7-month-old at risk with no dose (CDC case
    # 2016-UC-0114): the "2-23 month" series has skipped its first doses and forecasts one with no date, the
    # product series (Hib-MenCY-TT) starts at 2 months. With an empty earliest date the first series cannot
    # start earliest (SELECTB-14) nor be completable (SELECTB-3, SELECTB-12: no forecast finish date), so the
    # product series wins (-1 against +1) instead of a tie broken by listing order.
    skip = Skip("Both", [Condition("Age", begin_age="7 months")])
    no_date = Series(
        "no date",
        [Dose(Age(min="2 months"), skips=[skip]), Dose()],
        series_type="Risk",
        default=False,
        group="2",
        indications=[("070", None, None)],
    )
    product = Series(
        "product",
        [Dose(Age(min="2 months", earliest_rec="2 months", max="19 months"))],
        series_type="Risk",
        default=False,
        group="2",
        indications=[("070", None, None)],
        product_path=True,
    )
    data = build(tmp_path, {"Testitis": antigen_xml([no_date, product])})
    forecast = group(data, Patient(BIRTH, observations=(Observation("070"),)), date(2024, 8, 1))
    assert [a.series for a in forecast.antigens] == ["product"]
    assert forecast.forecast is not None and forecast.forecast.earliest == date(2024, 3, 1)


def test_risk_series_needs_an_indication_and_gender(tmp_path: Path) -> None:
    risk = Series(
        "risk series",
        [Dose(Age(min="10 years"))],
        series_type="Risk",
        group="2",
        default=False,
        indications=[("007", None, None)],
        genders=("Female",),
    )
    data = build(
        tmp_path,
        {
            "Testitis": antigen_xml(
                [Series("standard", [Dose(Age(min="2 months", max="5 years"))], equivalent="2"), risk]
            )
        },
    )
    on = date(2040, 1, 1)
    assert {a.series for a in assess(data, Patient(BIRTH, "F"), on).antigens} == {"standard"}
    pregnant = (Observation("007"),)
    assert "risk series" in {a.series for a in assess(data, Patient(BIRTH, "F", observations=pregnant), on).antigens}
    assert "risk series" not in {
        a.series for a in assess(data, Patient(BIRTH, "M", observations=pregnant), on).antigens
    }


def test_best_series_prefers_the_complete_one(tmp_path: Path) -> None:
    two_dose = Series("two doses", [Dose(), Dose(intervals=[Interval("4 weeks", "4 weeks")])], preference=1)
    one_dose = Series("one dose at 1 year", [Dose(Age(min="12 months"))], default=False, preference=2)
    data = build(tmp_path, {"Testitis": antigen_xml([two_dose, one_dose])})
    patient = Patient(BIRTH, doses=(AdministeredDose(date(2025, 2, 1), "901"),))
    forecast = group(data, patient, date(2025, 3, 1))
    assert [a.series for a in forecast.antigens] == ["one dose at 1 year"]
    assert forecast.status is SeriesStatus.COMPLETE


def test_best_series_scoring_in_process(tmp_path: Path) -> None:
    # Two in-process series: the one closer to completion wins (table 8-9).
    three = Series("three", [Dose(), Dose(), Dose()], preference=1)
    two = Series("two", [Dose(), Dose()], default=False, preference=2)
    data = build(tmp_path, {"Testitis": antigen_xml([three, two])})
    patient = Patient(BIRTH, doses=(AdministeredDose(date(2024, 6, 1), "901"),))
    forecast = group(data, patient, date(2024, 7, 1))
    assert [a.series for a in forecast.antigens] == ["two"]


def test_multiple_antigen_vaccine_group(tmp_path: Path) -> None:
    # A combined vaccine (905) for two antigens; "Beta" needs a second dose, "Alpha" does not.
    alpha = antigen_xml(
        [Series("alpha", [Dose(preferable=[("905", None, None, True)])], antigen="Alpha")], vaccine_group="Combo"
    )
    beta = antigen_xml(
        [
            Series(
                "beta",
                [
                    Dose(preferable=[("905", None, None, True)]),
                    Dose(intervals=[Interval("4 weeks", "4 weeks")], preferable=[("905", None, None, True)]),
                ],
                antigen="Beta",
            )
        ],
        vaccine_group="Combo",
    )
    data = build(
        tmp_path,
        {"Alpha": alpha, "Beta": beta},
        groups={"Combo": ["Alpha", "Beta"]},
        cvx_map={"905": ["Alpha", "Beta"]},
    )
    patient = Patient(BIRTH, doses=(AdministeredDose(date(2024, 6, 1), "905"),))
    forecast = group(data, patient, date(2024, 6, 1), "Combo")
    assert forecast.status is SeriesStatus.NOT_COMPLETE  # table 9-4: one antigen still needs a dose
    assert forecast.forecast is not None
    assert forecast.forecast.dose_number == 2 and forecast.forecast.earliest == date(2024, 6, 29)
    done = Patient(BIRTH, doses=(AdministeredDose(date(2024, 6, 1), "905"), AdministeredDose(date(2024, 7, 1), "905")))
    assert group(data, done, date(2024, 8, 1), "Combo").status is SeriesStatus.COMPLETE


def test_the_engine_is_pure(tmp_path: Path) -> None:
    data = infant_series(tmp_path)
    patient = Patient(BIRTH, doses=(AdministeredDose(date(2024, 3, 1), "901"),))
    assert assess(data, patient, date(2024, 3, 1)) == assess(data, patient, date(2024, 3, 1))


def test_administrative_guidance(tmp_path: Path) -> None:
    data = infant_series(tmp_path, vaccine_contraindications={"107": ["999"]})
    patient = Patient(BIRTH, observations=(Observation("107"),))
    forecast = group(data, patient, date(2024, 3, 1))
    assert forecast.status is SeriesStatus.NOT_COMPLETE  # 999 is not a vaccine of this series
    assert forecast.guidance == ("t",)  # the contraindication's text is passed on to the provider
