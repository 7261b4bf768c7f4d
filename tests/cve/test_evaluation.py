"""Each evaluation step of chapter 6, on small hand-made schedules (one rule at a time)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from esante.cve.engine import (
    AdministeredDose,
    EvaluationReason,
    EvaluationStatus,
    Patient,
    SeriesStatus,
    SupportingData,
    assess,
)
from tests.cve.schedules import Age, Condition, Dose, Interval, Series, Skip, antigen_xml, build, one_series

BIRTH = date(2024, 1, 1)
TODAY = date(2026, 1, 1)


def evaluations(data: SupportingData, *doses: tuple[date, str], birth: date = BIRTH, on: date = TODAY) -> list:
    patient = Patient(birth, "F", tuple(AdministeredDose(when, cvx) for when, cvx in doses))
    result = assess(data, patient, on)
    (forecast,) = [a for a in result.antigens if a.antigen == "Testitis"]
    return [(e.status, e.reasons) for e in forecast.evaluations]


def two_doses(folder: Path, **dose2: object) -> SupportingData:
    return one_series(
        folder,
        [
            Dose(Age("6 weeks - 4 days", "6 weeks", "2 months", "3 months", "5 years")),
            Dose(intervals=[Interval("4 weeks - 4 days", "4 weeks", "8 weeks", "12 weeks")], **dose2),  # type: ignore[arg-type]
        ],
    )


def test_valid_age_and_interval(tmp_path: Path) -> None:
    data = two_doses(tmp_path)
    first = BIRTH + timedelta(weeks=8)
    assert evaluations(data, (first, "901"), (first + timedelta(weeks=8), "901")) == [
        (EvaluationStatus.VALID, ()),
        (EvaluationStatus.VALID, ()),
    ]


def test_age_below_absolute_minimum_is_too_young(tmp_path: Path) -> None:
    data = two_doses(tmp_path)
    assert evaluations(data, (BIRTH + timedelta(days=37), "901")) == [
        (EvaluationStatus.NOT_VALID, (EvaluationReason.TOO_YOUNG,))
    ]


def test_age_in_grace_period_is_valid(tmp_path: Path) -> None:
    data = two_doses(tmp_path)
    assert evaluations(data, (BIRTH + timedelta(days=38), "901")) == [
        (EvaluationStatus.VALID, (EvaluationReason.GRACE_AGE,))
    ]


def test_at_maximum_age_is_extraneous_too_old(tmp_path: Path) -> None:
    data = two_doses(tmp_path)
    five = date(2029, 1, 1)
    assert evaluations(data, (five, "901"), on=five) == [(EvaluationStatus.EXTRANEOUS, (EvaluationReason.TOO_OLD,))]
    day_before = date(2028, 12, 31)
    assert evaluations(data, (day_before, "901"), on=five) == [(EvaluationStatus.VALID, ())]


def test_interval_below_absolute_minimum_is_too_soon(tmp_path: Path) -> None:
    data = two_doses(tmp_path)
    first = BIRTH + timedelta(weeks=8)
    assert evaluations(data, (first, "901"), (first + timedelta(days=23), "901"))[1] == (
        EvaluationStatus.NOT_VALID,
        (EvaluationReason.TOO_SOON,),
    )
    assert evaluations(data, (first, "901"), (first + timedelta(days=24), "901"))[1][0] is EvaluationStatus.VALID


def test_allowable_interval_rescues_a_short_preferable_interval(tmp_path: Path) -> None:
    data = two_doses(tmp_path, allowable_interval="14 days")
    first = BIRTH + timedelta(weeks=8)
    assert evaluations(data, (first, "901"), (first + timedelta(days=14), "901"))[1][0] is EvaluationStatus.VALID
    assert evaluations(data, (first, "901"), (first + timedelta(days=13), "901"))[1][0] is EvaluationStatus.NOT_VALID


def test_interval_from_an_invalid_dose(tmp_path: Path) -> None:
    # CALCDTINT-1: the reference is the previous dose evaluated valid *or not valid*.
    data = two_doses(tmp_path)
    first = BIRTH + timedelta(weeks=8)
    too_soon = first + timedelta(days=10)
    third = first + timedelta(days=30)  # 30 days after the valid dose, but only 20 after the invalid one
    assert [s for s, _ in evaluations(data, (first, "901"), (too_soon, "901"), (third, "901"))] == [
        EvaluationStatus.VALID,
        EvaluationStatus.NOT_VALID,
        EvaluationStatus.NOT_VALID,
    ]


def test_interval_from_target_dose(tmp_path: Path) -> None:
    data = one_series(
        tmp_path,
        [
            Dose(),
            Dose(intervals=[Interval("28 days", "28 days")]),
            Dose(
                intervals=[
                    Interval("8 weeks", "8 weeks"),
                    Interval("16 weeks", "16 weeks", from_previous=False, from_target_dose=1),
                ]
            ),
        ],
    )
    d1 = date(2024, 3, 1)
    d2 = d1 + timedelta(weeks=4)
    assert (
        evaluations(data, (d1, "901"), (d2, "901"), (d1 + timedelta(weeks=15), "901"))[2][0]
        is EvaluationStatus.NOT_VALID
    )
    assert (
        evaluations(data, (d1, "901"), (d2, "901"), (d1 + timedelta(weeks=16), "901"))[2][0] is EvaluationStatus.VALID
    )


def test_inadvertent_vaccine(tmp_path: Path) -> None:
    data = one_series(tmp_path, [Dose(inadvertent=["903"])])
    assert evaluations(data, (date(2024, 6, 1), "903")) == [
        (EvaluationStatus.NOT_VALID, (EvaluationReason.INADVERTENT,))
    ]


def test_allowable_vaccine_is_valid_other_is_not(tmp_path: Path) -> None:
    data = one_series(tmp_path, [Dose(), Dose()])
    assert evaluations(data, (date(2024, 6, 1), "902"))[0][0] is EvaluationStatus.VALID
    assert evaluations(data, (date(2024, 6, 1), "903")) == [
        (EvaluationStatus.NOT_VALID, (EvaluationReason.NOT_PREFERABLE_OR_ALLOWABLE,))
    ]


def test_preferable_vaccine_age_range(tmp_path: Path) -> None:
    data = one_series(tmp_path, [Dose(preferable=[("901", "6 months", None, True)], allowable=[])])
    assert evaluations(data, (date(2024, 5, 1), "901"))[0][0] is EvaluationStatus.NOT_VALID
    assert evaluations(data, (date(2024, 7, 1), "901"))[0][0] is EvaluationStatus.VALID


def test_doses_after_the_series_is_complete_are_extraneous(tmp_path: Path) -> None:
    data = one_series(tmp_path, [Dose()])
    assert evaluations(data, (date(2024, 6, 1), "901"), (date(2024, 9, 1), "901"))[1] == (
        EvaluationStatus.EXTRANEOUS,
        (EvaluationReason.SERIES_COMPLETE,),
    )


def test_recurring_dose(tmp_path: Path) -> None:
    # A satisfied recurring target dose is followed by an identical one (figure 4-6, step 6).
    data = one_series(tmp_path, [Dose(), Dose(intervals=[Interval("1 year", "1 year")], recurring=True)])
    doses = [(date(2024, 6, 1), "901"), (date(2025, 6, 1), "901"), (date(2025, 7, 1), "901"), (date(2026, 7, 1), "901")]
    assert [s for s, _ in evaluations(data, *doses, on=date(2026, 7, 2))] == [
        EvaluationStatus.VALID,
        EvaluationStatus.VALID,
        EvaluationStatus.NOT_VALID,  # one month after the previous booster
        EvaluationStatus.VALID,  # one year after the previous (invalid) dose: CALCDTINT-1
    ]
    result = assess(data, Patient(BIRTH, "F", tuple(AdministeredDose(d, c) for d, c in doses)), date(2026, 7, 2))
    (group,) = result.group("Testitis")
    assert group.status.value == "Not Complete"  # a recurring series never completes
    assert group.forecast is not None and group.forecast.earliest == date(2027, 7, 1)


def test_conditional_skip_in_evaluation(tmp_path: Path) -> None:
    # Dose 2 is not needed when dose 1 was given at 12 months or older: the next dose is evaluated as dose 3.
    skip = Skip("Evaluation", [Condition("Age", begin_age="12 months")])
    data = one_series(tmp_path, [Dose(), Dose(skips=[skip]), Dose()])
    result = assess(
        data,
        Patient(BIRTH, "F", (AdministeredDose(date(2025, 2, 1), "901"), AdministeredDose(date(2025, 4, 1), "901"))),
        TODAY,
    )
    (series,) = [a for a in result.antigens if a.antigen == "Testitis"]
    assert [e.target_dose for e in series.evaluations] == [1, 3]
    assert series.status.value == "Complete"


def test_sub_standard_dose(tmp_path: Path) -> None:
    data = one_series(tmp_path, [Dose()])
    patient = Patient(BIRTH, "F", (AdministeredDose(date(2024, 6, 1), "901", lot_expiration=date(2024, 5, 1)),))
    (series,) = [a for a in assess(data, patient, TODAY).antigens if a.antigen == "Testitis"]
    assert series.evaluations[0].status is EvaluationStatus.SUB_STANDARD
    assert series.status.value == "Not Complete"


def test_live_virus_conflict(tmp_path: Path) -> None:
    # 904 (antigen "Other") opens a conflict for 901: from day 1 to 28 days (24 days if 904 was valid).
    other = antigen_xml(
        [Series("Other series", [Dose(preferable=[("904", None, None, True)], allowable=[])], antigen="Other")],
        vaccine_group="Other",
    )
    data = build(
        tmp_path,
        {"Testitis": antigen_xml([Series("Testitis series", [Dose()])]), "Other": other},
        groups={"Testitis": ["Testitis"], "Other": ["Other"]},
        conflicts=[("904", "901", "1 day", "24 days", "28 days")],
    )
    live = date(2025, 3, 1)
    assert evaluations(data, (live, "904"), (live + timedelta(days=23), "901"))[0] == (
        EvaluationStatus.NOT_VALID,
        (EvaluationReason.LIVE_VIRUS_CONFLICT,),
    )
    assert evaluations(data, (live, "904"), (live + timedelta(days=24), "901"))[0][0] is EvaluationStatus.VALID
    assert evaluations(data, (live, "904"), (live, "901"))[0][0] is EvaluationStatus.VALID  # same day: no conflict


def test_live_virus_conflict_after_an_invalid_dose_lasts_longer(tmp_path: Path) -> None:
    other = antigen_xml(
        [
            Series(
                "Other series",
                [Dose(Age("1 year - 4 days", "1 year"), preferable=[("904", None, None, True)], allowable=[])],
                antigen="Other",
            )
        ],
        vaccine_group="Other",
    )
    data = build(
        tmp_path,
        {"Testitis": antigen_xml([Series("Testitis series", [Dose()])]), "Other": other},
        groups={"Testitis": ["Testitis"], "Other": ["Other"]},
        conflicts=[("904", "901", "1 day", "24 days", "28 days")],
    )
    early = date(2024, 6, 1)  # 904 at 5 months: not valid (too young), so the conflict ends after 28 days
    assert evaluations(data, (early, "904"), (early + timedelta(days=25), "901"))[0][1] == (
        EvaluationReason.LIVE_VIRUS_CONFLICT,
    )
    assert evaluations(data, (early, "904"), (early + timedelta(days=28), "901"))[0][0] is EvaluationStatus.VALID


def test_vaccine_count_without_vaccine_types_counts_only_the_series_antigen(tmp_path: Path) -> None:
    # CONDSKIP-1 with <vaccineTypes/> (as in 4.64's DTaP "start at 12 months" dose 7 and Hib risk child dose 1,
    # both "Total"): the count is of the antigen's own doses. A dose of another antigen (904, "Other") given at
    # 13 months does not make the last dose ("not needed after 1 or more doses from 12 months") skippable.
    skip = Skip(
        "Both",
        [Condition("Vaccine Count by Age", "12 months", dose_count=0, dose_type="Total", count_logic="greater than")],
    )
    other = antigen_xml(
        [Series("Other series", [Dose(preferable=[("904", None, None, True)], allowable=[])], antigen="Other")],
        vaccine_group="Other",
    )

    def schedule(folder: Path, doses: list[Dose]) -> SupportingData:
        folder.mkdir()
        return build(
            folder,
            {"Testitis": antigen_xml([Series("Testitis series", doses)]), "Other": other},
            groups={"Testitis": ["Testitis"], "Other": ["Other"]},
        )

    two = schedule(tmp_path / "two", [Dose(), Dose(skips=[skip])])
    mixed = (AdministeredDose(date(2024, 3, 1), "901"), AdministeredDose(date(2025, 2, 1), "904"))
    (testitis,) = assess(two, Patient(BIRTH, doses=mixed), date(2025, 3, 1)).group("Testitis")
    assert testitis.status is SeriesStatus.NOT_COMPLETE
    assert testitis.forecast is not None and testitis.forecast.dose_number == 2
    # A Testitis dose at 13 months does count: dose 3 is skipped and the series is complete.
    three = schedule(tmp_path / "three", [Dose(), Dose(), Dose(skips=[skip])])
    own = (AdministeredDose(date(2024, 3, 1), "901"), AdministeredDose(date(2025, 2, 1), "901"))
    (testitis,) = assess(three, Patient(BIRTH, doses=own), date(2025, 3, 1)).group("Testitis")
    assert testitis.status is SeriesStatus.COMPLETE
