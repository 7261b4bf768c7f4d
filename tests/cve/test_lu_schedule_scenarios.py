"""Hand-made patients checked against the Luxembourg calendar (docs/cve-schedule-lu.md).

Every expected date below is worked out from the calendar text and the CDSi date rules (CALCDT: months then
weeks/days; the past-due date is the day before the latest recommended age), written next to the assertion; none
was copied from the engine's output. Dates of the seasonal recommendations are those of the 2025-26 season in the
packaged data (influenza from 1 October 2025, RSV 1 September 2025 - 28 February 2026).
"""

from __future__ import annotations

from datetime import date

import pytest

from esante.cve.engine import (
    AdministeredDose,
    Assessment,
    EvaluationReason,
    EvaluationStatus,
    Observation,
    Patient,
    SeriesStatus,
    SupportingData,
    VaccineGroupForecast,
    assess,
)
from esante.cve.schedules import load_luxembourg_schedule

ON = date(2025, 10, 15)
HEXAVALENT, DTAP_IPV, TDAP, IPV = "146", "130", "115", "10"
PCV20, ROTARIX, BEXSERO, MENACWY_TT = "216", "119", "163", "203"
MMR, HPV9, SHINGRIX, FLU = "03", "165", "187", "140"
DTP_WHOLE_CELL = "01"


@pytest.fixture(scope="module")
def lu() -> SupportingData:
    return load_luxembourg_schedule()


def doses(*pairs: tuple[date, str]) -> tuple[AdministeredDose, ...]:
    return tuple(AdministeredDose(d, cvx) for d, cvx in pairs)


def group(result: Assessment, name: str, series_type: str = "Standard") -> VaccineGroupForecast:
    found = [g for g in result.group(name) if series_type in g.series_type.split("+")]
    assert len(found) == 1, [(g.vaccine_group, g.series_type) for g in result.group(name)]
    return found[0]


def due(g: VaccineGroupForecast, earliest: date | None, recommended: date, past_due: date | None = None) -> None:
    assert g.status is SeriesStatus.NOT_COMPLETE, (g.status, g.reasons)
    assert g.forecast is not None
    if earliest is not None:
        assert g.forecast.earliest == earliest
    assert g.forecast.recommended == recommended
    if past_due is not None:
        assert g.forecast.past_due == past_due


def statuses(result: Assessment, antigen: str) -> list[tuple[date, EvaluationStatus, tuple[EvaluationReason, ...]]]:
    forecasts = [a for a in result.antigens if a.antigen == antigen]
    assert forecasts, antigen
    return [(e.date_administered, e.status, e.reasons) for e in forecasts[0].evaluations]


# --------------------------------------------------------------------------------------------- infants


def test_newborn_today_first_hexavalent_at_2_months_and_the_rest_of_the_infant_calendar(lu: SupportingData) -> None:
    """Born today (15 Oct 2025). Calendar: combined vaccine, rotavirus and PCV at 2 months; MenB at 3 months; MMR and
    varicella at 12 months; MenACWY at 13 months; nirsevimab at birth in the RSV season; HPV from 9 years."""
    result = assess(lu, Patient(ON, "F"), ON)
    # 2 months = 15 Dec 2025; minimum age 6 weeks = 26 Nov 2025; past due = 3 months + 4 weeks - 1 day
    # = 15 Jan 2026 + 28 days - 1 day = 11 Feb 2026
    due(group(result, "DTaP/Tdap/Td"), date(2025, 11, 26), date(2025, 12, 15), date(2026, 2, 11))
    for name in ("Hib", "Polio", "Pneumococcal", "Rotavirus"):
        due(group(result, name), date(2025, 11, 26), date(2025, 12, 15))
    due(group(result, "HepB"), ON, date(2025, 12, 15))  # a birth dose is possible (HBsAg-positive mother)
    due(group(result, "Meningococcal B"), date(2025, 12, 10), date(2026, 1, 15))  # 8 weeks; 3 months
    due(group(result, "MMR"), date(2026, 10, 15), date(2026, 10, 15))  # 12 months
    due(group(result, "Varicella"), date(2026, 10, 15), date(2026, 10, 15))
    due(group(result, "Meningococcal"), date(2026, 10, 15), date(2026, 11, 15))  # 12 months minimum; 13 months
    due(group(result, "RSV"), ON, ON)  # born in the season: before leaving the maternity
    due(group(result, "HPV"), date(2034, 10, 15), date(2034, 10, 15))  # 9 years


def test_five_month_old_after_2_and_4_months_booster_due_at_11_months(lu: SupportingData) -> None:
    """Born 10 May 2025, hexavalent at 2 months (10 Jul) and 4 months (10 Sep): the booster of the 2+1 schedule is
    due at 11 months = 10 Apr 2026 (6 months after dose 2 would be 10 Mar 2026, earlier); past due 12 months + 4
    weeks - 1 day = 10 May 2026 + 27 days = 6 Jun 2026."""
    patient = Patient(date(2025, 5, 10), "M", doses((date(2025, 7, 10), HEXAVALENT), (date(2025, 9, 10), HEXAVALENT)))
    result = assess(lu, patient, ON)
    for antigen in ("Diphtheria", "Tetanus", "Pertussis", "Polio", "Hib", "HepB"):
        assert [s for _, s, _ in statuses(result, antigen)] == [EvaluationStatus.VALID] * 2, antigen
    due(group(result, "DTaP/Tdap/Td"), date(2026, 4, 10), date(2026, 4, 10), date(2026, 6, 6))
    assert group(result, "DTaP/Tdap/Td").forecast.dose_number == 3  # type: ignore[union-attr]
    for name in ("Hib", "HepB", "Polio"):
        due(group(result, name), date(2026, 4, 10), date(2026, 4, 10), date(2026, 6, 6))


def test_premature_3_plus_1_schedule_counts(lu: SupportingData) -> None:
    """Infants born before 33 weeks get 3+1 (2, 3, 4 months + 11 months): every dose is valid, HepB and Hib are
    complete, and the next DTaP-IPV dose is the 5-6 year booster (5 years = 10 Jan 2029)."""
    patient = Patient(
        date(2024, 1, 10),
        "F",
        doses(
            (date(2024, 3, 10), HEXAVALENT),
            (date(2024, 4, 10), HEXAVALENT),
            (date(2024, 5, 10), HEXAVALENT),
            (date(2024, 12, 10), HEXAVALENT),
        ),
    )
    result = assess(lu, patient, ON)
    for antigen in ("Diphtheria", "Polio", "Hib", "HepB"):
        assert all(s is EvaluationStatus.VALID for _, s, _ in statuses(result, antigen)), antigen
    assert group(result, "HepB").status is SeriesStatus.COMPLETE
    assert group(result, "Hib").status is SeriesStatus.COMPLETE
    due(group(result, "DTaP/Tdap/Td"), date(2028, 1, 10), date(2029, 1, 10))  # minimum 4 years; 5 years


def test_booster_given_at_9_months_is_too_young(lu: SupportingData) -> None:
    """Born 1 Oct 2024, hexavalent at 2, 4 and 9 months: the 9-month dose is before the 11-month booster age and is
    flagged 'too young' for every antigen. The booster is then due from 11 months (1 Sep 2025) for HepB (8 weeks
    after the previous dose, 26 Aug, is earlier) and, for DTaP, 6 months after the invalid dose (1 Jan 2026): the
    interval runs from the previous dose given, valid or not."""
    patient = Patient(
        date(2024, 10, 1),
        "F",
        doses((date(2024, 12, 1), HEXAVALENT), (date(2025, 2, 1), HEXAVALENT), (date(2025, 7, 1), HEXAVALENT)),
    )
    result = assess(lu, patient, ON)
    for antigen in ("Diphtheria", "Tetanus", "Pertussis", "Polio", "Hib", "HepB"):
        last = statuses(result, antigen)[-1]
        assert last[1] is EvaluationStatus.NOT_VALID and EvaluationReason.TOO_YOUNG in last[2], antigen
    due(group(result, "DTaP/Tdap/Td"), date(2026, 1, 1), date(2026, 1, 1))
    due(group(result, "HepB"), date(2025, 9, 1), date(2025, 9, 1))


def test_rotavirus_second_dose_at_3_months_and_age_limit(lu: SupportingData) -> None:
    """Rotarix at 2 months (1 Sep 2025, born 1 Jul): dose 2 at 3 months (1 Oct 2025), no earlier than 4 weeks after
    dose 1 (29 Sep). A child of 7 months never vaccinated is past the age limits (dose 1 before 15 weeks)."""
    result = assess(lu, Patient(date(2025, 7, 1), "M", doses((date(2025, 9, 1), ROTARIX))), ON)
    due(group(result, "Rotavirus"), date(2025, 9, 29), date(2025, 10, 1))
    late = assess(lu, Patient(date(2025, 3, 1), "M"), ON, vaccine_groups=["Rotavirus"])
    assert group(late, "Rotavirus").status is SeriesStatus.AGED_OUT


def test_men_b_booster_at_12_months(lu: SupportingData) -> None:
    """Bexsero at 3 months (10 Apr 2025) and 5 months (10 Jun): booster at 12 months = 10 Jan 2026 (6 months after
    dose 2, 10 Dec 2025, is earlier); latest recommended 16 months + 4 weeks: past due 6 Jun 2026."""
    patient = Patient(date(2025, 1, 10), "M", doses((date(2025, 4, 10), BEXSERO), (date(2025, 6, 10), BEXSERO)))
    result = assess(lu, patient, ON, vaccine_groups=["Meningococcal B"])
    due(group(result, "Meningococcal B"), date(2026, 1, 10), date(2026, 1, 10), date(2026, 6, 6))


def test_pcv_2_plus_1_is_complete(lu: SupportingData) -> None:
    """PCV20 at 2, 4 and 11 months: the pneumococcal series is complete."""
    patient = Patient(
        date(2024, 1, 1),
        "M",
        doses((date(2024, 3, 1), PCV20), (date(2024, 5, 1), PCV20), (date(2024, 12, 1), PCV20)),
    )
    assert group(assess(lu, patient, ON), "Pneumococcal").status is SeriesStatus.COMPLETE


# --------------------------------------------------------------------------------------------- MMR(V)


def test_twelve_month_old_without_mmr_is_due(lu: SupportingData) -> None:
    """Born 15 Oct 2024: MMR and varicella at 12 months = today; past due 13 months + 4 weeks - 1 day = 15 Nov 2025
    + 27 days = 12 Dec 2025."""
    result = assess(lu, Patient(date(2024, 10, 15), "F"), ON)
    due(group(result, "MMR"), ON, ON, date(2025, 12, 12))
    due(group(result, "Varicella"), ON, ON, date(2025, 12, 12))


def test_mmr_given_at_10_months_is_too_young(lu: SupportingData) -> None:
    """MMR at 10 months (1 Aug 2025, born 1 Oct 2024) is before the 12-month minimum: not valid; dose 1 is still due
    at 12 months (1 Oct 2025)."""
    result = assess(lu, Patient(date(2024, 10, 1), "F", doses((date(2025, 8, 1), MMR))), ON)
    for antigen in ("Measles", "Mumps", "Rubella"):
        (_, status, reasons) = statuses(result, antigen)[0]
        assert status is EvaluationStatus.NOT_VALID and EvaluationReason.TOO_YOUNG in reasons
    due(group(result, "MMR"), date(2025, 10, 1), date(2025, 10, 1))


def test_second_mmr_too_soon_and_due_at_15_months(lu: SupportingData) -> None:
    """Born 10 Jan 2023, MMR at 12 months (10 Jan 2024) and again 2 weeks later: the second is 'too soon' (4 weeks
    minimum); dose 2 is recommended at 15 months = 10 Apr 2024, after 4 weeks from the last dose (21 Feb 2024)."""
    patient = Patient(date(2023, 1, 10), "M", doses((date(2024, 1, 10), MMR), (date(2024, 1, 24), MMR)))
    result = assess(lu, patient, ON)
    (_, status, reasons) = statuses(result, "Measles")[1]
    assert status is EvaluationStatus.NOT_VALID and EvaluationReason.TOO_SOON in reasons
    due(group(result, "MMR"), date(2024, 2, 21), date(2024, 4, 10))


def test_adults_born_after_1980_need_two_mmr_doses(lu: SupportingData) -> None:
    """Adults born after 1980 without two MMR doses are caught up; those born before 1981 are presumed immune."""
    born_1985 = Patient(date(1985, 3, 1), "F", doses((date(1986, 6, 1), MMR)))
    g = group(assess(lu, born_1985, ON, vaccine_groups=["MMR"]), "MMR")
    assert g.status is SeriesStatus.NOT_COMPLETE and g.forecast is not None and g.forecast.dose_number == 2
    born_1975 = Patient(date(1975, 3, 1), "F")
    assert group(assess(lu, born_1975, ON, vaccine_groups=["MMR"]), "MMR").status is SeriesStatus.IMMUNE


# --------------------------------------------------------------------------------------------- children, adolescents


def test_pre_school_booster_at_5_6_years(lu: SupportingData) -> None:
    """Born 10 Mar 2019 with the 2+1 hexavalent series: the dTap-IPV booster is recommended at 5 years (10 Mar
    2024), possible from 4 years, past due at 7 years - 1 day (9 Mar 2026)."""
    patient = Patient(
        date(2019, 3, 10),
        "F",
        doses((date(2019, 5, 10), HEXAVALENT), (date(2019, 7, 10), HEXAVALENT), (date(2020, 2, 10), HEXAVALENT)),
    )
    result = assess(lu, patient, ON)
    due(group(result, "DTaP/Tdap/Td"), date(2023, 3, 10), date(2024, 3, 10), date(2026, 3, 9))
    due(group(result, "Polio"), date(2023, 3, 10), date(2024, 3, 10))


def test_adolescent_booster_at_15_16_years(lu: SupportingData) -> None:
    """Born 1 May 2009, 2+1 series and DTaP-IPV at 5 years: the dTap-IPV booster is recommended at 15 years (1 May
    2024), past due at 17 years + 4 weeks - 1 day = 28 May 2026, for DTaP and polio alike."""
    patient = Patient(
        date(2009, 5, 1),
        "F",
        doses(
            (date(2009, 7, 1), HEXAVALENT),
            (date(2009, 9, 1), HEXAVALENT),
            (date(2010, 4, 1), HEXAVALENT),
            (date(2015, 1, 1), DTAP_IPV),
        ),
    )
    result = assess(lu, patient, ON)
    due(group(result, "DTaP/Tdap/Td"), None, date(2024, 5, 1), date(2026, 5, 28))
    due(group(result, "Polio"), None, date(2024, 5, 1), date(2026, 5, 28))


@pytest.mark.parametrize("gender", ["F", "M"])
def test_thirteen_year_old_girl_and_boy_hpv_due(lu: SupportingData, gender: str) -> None:
    """HPV for girls and boys 9-14 years: born 1 May 2012, recommended from 9 years (1 May 2021), past due the day
    before 15 years (30 Apr 2027)."""
    result = assess(lu, Patient(date(2012, 5, 1), gender), ON, vaccine_groups=["HPV"])
    due(group(result, "HPV"), date(2021, 5, 1), date(2021, 5, 1), date(2027, 4, 30))


def test_hpv_two_doses_six_months_apart_complete_and_no_programme_after_15(lu: SupportingData) -> None:
    """Two doses 6 months apart before 15 complete the series; a 16-year-old never vaccinated is outside the
    programme (from 15 years HPV is for risk groups only)."""
    two = Patient(date(2012, 5, 1), "M", doses((date(2023, 6, 1), HPV9), (date(2023, 12, 1), HPV9)))
    assert group(assess(lu, two, ON, vaccine_groups=["HPV"]), "HPV").status is SeriesStatus.COMPLETE
    sixteen = Patient(date(2009, 5, 1), "F")
    assert group(assess(lu, sixteen, ON, vaccine_groups=["HPV"]), "HPV").status is SeriesStatus.AGED_OUT


def test_hpv_from_15_for_men_who_have_sex_with_men_is_three_doses(lu: SupportingData) -> None:
    """From 15 years, MSM (observation 036): 3 doses at 0, 2 and 6 months. Dose 1 given 1 Jun 2025: dose 2
    recommended 2 months later (1 Aug 2025)."""
    patient = Patient(date(2005, 5, 1), "M", doses((date(2025, 6, 1), HPV9)), observations=(Observation("036"),))
    g = group(assess(lu, patient, ON, vaccine_groups=["HPV"]), "HPV", "Risk")
    due(g, date(2025, 6, 29), date(2025, 8, 1))  # minimum 4 weeks = 29 Jun


def test_menacwy_toddler_dose_then_adolescent_dose(lu: SupportingData) -> None:
    """MenACWY (Nimenrix) at 13 months counts; the adolescent dose is recommended at 12 years (1 May 2024), past due
    at 15 years + 4 weeks - 1 day (28 May 2027)."""
    patient = Patient(date(2012, 5, 1), "M", doses((date(2013, 6, 1), MENACWY_TT)))
    result = assess(lu, patient, ON, vaccine_groups=["Meningococcal"])
    assert [s for _, s, _ in statuses(result, "Meningococcal")] == [EvaluationStatus.VALID]
    due(group(result, "Meningococcal"), None, date(2024, 5, 1), date(2027, 5, 28))


# --------------------------------------------------------------------------------------------- adults


def test_seventy_year_old_zoster_influenza_pneumococcal_due(lu: SupportingData) -> None:
    """Born 3 Mar 1955: recombinant zoster and PCV20 from 65 years (3 Mar 2020); influenza every season from 65,
    this season from 1 Oct 2025."""
    result = assess(lu, Patient(date(1955, 3, 3), "M"), ON)
    due(group(result, "Zoster"), None, date(2020, 3, 3))
    due(group(result, "Pneumococcal"), None, date(2020, 3, 3))
    due(group(result, "Influenza"), date(2025, 10, 1), date(2025, 10, 1))
    assert group(result, "HepB").status is SeriesStatus.AGED_OUT  # no adult hepatitis B in the calendar


def test_zoster_second_dose_two_to_six_months_after(lu: SupportingData) -> None:
    """Shingrix on 1 Jun 2025: dose 2 from 2 months (1 Aug 2025); past due 6 months + 4 weeks - 1 day after dose 1
    = 1 Dec 2025 + 27 days = 28 Dec 2025."""
    patient = Patient(date(1955, 3, 3), "M", doses((date(2025, 6, 1), SHINGRIX)))
    due(
        group(assess(lu, patient, ON, vaccine_groups=["Zoster"]), "Zoster"),
        date(2025, 8, 1),
        date(2025, 8, 1),
        date(2025, 12, 28),
    )


def _adult_history(last_booster: date) -> tuple[AdministeredDose, ...]:
    # born 3 Mar 1955: 2, 4, 11 months, 5 years, 15 years, then an adult booster
    return doses(
        (date(1955, 5, 3), DTP_WHOLE_CELL),
        (date(1955, 7, 3), DTP_WHOLE_CELL),
        (date(1956, 2, 3), DTP_WHOLE_CELL),
        (date(1960, 6, 1), DTP_WHOLE_CELL),
        (date(1970, 5, 1), TDAP),
        (last_booster, TDAP),
    )


def test_seventy_year_old_dt_booster_when_the_last_is_over_10_years_old(lu: SupportingData) -> None:
    """Last dTap on 1 Jun 2014: the 10-yearly booster was due on 1 Jun 2024 (possible from 5 years, 1 Jun 2019);
    past due 10 years + 4 weeks - 1 day = 28 Jun 2024. With the last booster on 1 Jun 2020 it is not due before
    1 Jun 2030."""
    result = assess(lu, Patient(date(1955, 3, 3), "M", _adult_history(date(2014, 6, 1))), ON, ["DTaP/Tdap/Td"])
    due(group(result, "DTaP/Tdap/Td"), date(2019, 6, 1), date(2024, 6, 1), date(2024, 6, 28))
    recent = assess(lu, Patient(date(1955, 3, 3), "M", _adult_history(date(2020, 6, 1))), ON, ["DTaP/Tdap/Td"])
    g = group(recent, "DTaP/Tdap/Td")
    assert g.forecast is not None and g.forecast.recommended == date(2030, 6, 1)


def test_influenza_once_a_season(lu: SupportingData) -> None:
    """A 70-year-old vaccinated on 5 Oct 2025 is done for this season; vaccinated last season, due again from
    1 Oct 2025."""
    this_season = Patient(date(1955, 3, 3), "M", doses((date(2025, 10, 5), FLU)))
    on = date(2025, 11, 15)
    assert group(assess(lu, this_season, on, ["Influenza"]), "Influenza").status is SeriesStatus.COMPLETE
    last_season = Patient(date(1955, 3, 3), "M", doses((date(2024, 10, 5), FLU)))
    due(group(assess(lu, last_season, on, ["Influenza"]), "Influenza"), date(2025, 10, 1), date(2025, 10, 1))


# --------------------------------------------------------------------------------------------- pregnancy, RSV

PREGNANT = (Observation("007"), Observation("170", date(2025, 7, 1)))  # onset of pregnancy 1 Jul 2025


def test_pertussis_in_each_pregnancy_from_13_weeks(lu: SupportingData) -> None:
    """dTap in the 2nd trimester: from 13 weeks (1 Jul + 91 days = 30 Sep 2025), recommended by the end of week 26
    (27 weeks - 1 day = 1 Jul + 188 days = 5 Jan 2026). A dose from an earlier pregnancy does not count."""
    earlier = doses((date(2023, 5, 10), TDAP))
    result = assess(lu, Patient(date(1995, 3, 3), "F", earlier, PREGNANT), ON, ["DTaP/Tdap/Td"])
    due(group(result, "DTaP/Tdap/Td", "Risk"), date(2025, 9, 30), date(2025, 9, 30), date(2026, 1, 5))
    pregnancy_series = [a for a in result.antigens if a.series == "Pertussis pregnancy 1-dose series"]
    assert pregnancy_series[0].evaluations[0].status is EvaluationStatus.NOT_VALID
    # given at 28 weeks (13 Jan 2026): done for this pregnancy
    given = doses((date(2026, 1, 13), TDAP))
    after = assess(lu, Patient(date(1995, 3, 3), "F", given, PREGNANT), date(2026, 1, 20), ["DTaP/Tdap/Td"])
    assert group(after, "DTaP/Tdap/Td", "Risk").status is SeriesStatus.COMPLETE


def test_influenza_and_rsv_in_pregnancy(lu: SupportingData) -> None:
    """Influenza in winter at any stage: due from the season start (1 Oct 2025). RSV vaccine at weeks 32-36 in the
    season: from 32 weeks (1 Jul + 224 days = 10 Feb 2026), past due 37 weeks - 1 day (16 Mar 2026)."""
    result = assess(lu, Patient(date(1995, 3, 3), "F", (), PREGNANT), ON)
    due(group(result, "Influenza", "Risk"), date(2025, 10, 1), date(2025, 10, 1))
    due(group(result, "RSV", "Risk"), date(2026, 2, 10), date(2026, 2, 10), date(2026, 3, 16))


def test_newborn_rsv_antibody_in_season_or_at_its_start(lu: SupportingData) -> None:
    """Nirsevimab for newborns in the season (September-February) and, at the start of the season, infants under
    6 months born outside it; not for an infant already 6 months old when the season starts, nor when the mother was
    vaccinated in pregnancy (dual strategy)."""
    in_season = assess(lu, Patient(date(2025, 10, 1), "M"), ON, ["RSV"])
    due(group(in_season, "RSV"), date(2025, 10, 1), date(2025, 10, 1))
    summer_baby = assess(lu, Patient(date(2025, 4, 20), "M"), date(2025, 8, 1), ["RSV"])
    due(group(summer_baby, "RSV"), date(2025, 9, 1), date(2025, 9, 1))
    too_old = assess(lu, Patient(date(2025, 2, 1), "M"), date(2025, 9, 15), ["RSV"])
    assert group(too_old, "RSV").status is SeriesStatus.AGED_OUT
    mother_vaccinated = Patient(date(2025, 10, 1), "M", observations=(Observation("278"),))
    assert group(assess(lu, mother_vaccinated, ON, ["RSV"]), "RSV").status is SeriesStatus.CONTRAINDICATED


def test_dtap_ipv_products_recorded_as_cvx_130_count_for_teenagers_adults_and_pregnancy(lu: SupportingData) -> None:
    """Boostrix Polio / Repevax (dTap-IPV) have no CVX of their own; the product table records them as 130. Given at
    15 years (1 Jun 2024) it is the adolescent booster for DTaP and polio, and the next one is due 10 years later
    (1 Jun 2034, past due 28 Jun 2034); in pregnancy it counts as the pertussis dose."""
    teen = Patient(
        date(2009, 5, 1),
        "F",
        doses(
            (date(2009, 7, 1), HEXAVALENT),
            (date(2009, 9, 1), HEXAVALENT),
            (date(2010, 4, 1), HEXAVALENT),
            (date(2015, 1, 1), DTAP_IPV),
            (date(2024, 6, 1), DTAP_IPV),
        ),
    )
    result = assess(lu, teen, ON, ["DTaP/Tdap/Td", "Polio"])
    for antigen in ("Diphtheria", "Tetanus", "Pertussis", "Polio"):
        assert statuses(result, antigen)[-1][1] is EvaluationStatus.VALID, antigen
    due(group(result, "DTaP/Tdap/Td"), None, date(2034, 6, 1), date(2034, 6, 28))
    due(group(result, "Polio"), None, date(2034, 6, 1), date(2034, 6, 28))
    pregnant = Patient(date(1995, 3, 3), "F", doses((date(2025, 11, 1), DTAP_IPV)), PREGNANT)
    after = assess(lu, pregnant, date(2025, 11, 15), ["DTaP/Tdap/Td"])
    assert group(after, "DTaP/Tdap/Td", "Risk").status is SeriesStatus.COMPLETE
