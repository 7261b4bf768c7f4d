"""Forecast dates and reasons for one evaluated patient series (chapter 7).

7.1 conditional skip at the assessment date, 7.2 evidence of immunity, 7.3 contraindications, 7.4 forecast need
(table 7-10), 7.5 the dates (FORECASTDT-1..6), recommended vaccines (FORECASTRECVAC-1) and dose number
(FORECASTDN-1), and 7.6: a forecast whose earliest date would let the target dose be skipped is redone for the
next target dose.

The seasonal recommendation is used by the three rules that name it - table 7-10 (past the seasonal end date),
FORECASTDTCAN-1 (the seasonal start date) and FORECASTDN-1 (doses on or after the seasonal start date) - and all
three read the same window, the season that applies at the assessment date: the data's window recurring every
year (``dates.season_at``). Chapter 6 (evaluation) does not use the seasonal recommendation.
"""

from __future__ import annotations

from datetime import date, timedelta

from esante.cve.engine.dates import MAX_DATE, MIN_DATE, add_duration, later, season_at
from esante.cve.engine.evaluate import conflict_end_dates, interval_reference
from esante.cve.engine.model import Antigen, SeriesDose, SupportingData, in_effect
from esante.cve.engine.patient import Forecast, SeriesStatus, TargetDoseStatus
from esante.cve.engine.skip import CompletedGroup, can_skip
from esante.cve.engine.state import Context, PatientSeries, TargetDose, age_rule

__all__ = ["contraindicated_vaccines", "dose_number", "forecast_series", "has_immunity", "minimum_dates", "season"]

_ONE_DAY = timedelta(days=1)


def season(dose: SeriesDose, on: date) -> tuple[date | None, date | None]:
    """The seasonal recommendation start and end dates of a series dose that apply at the assessment date ``on``.

    The supporting data give one season as absolute dates (4.64: RSV 2025-10-01 to 2026-03-31); the engine reads
    it as recurring every year and applies the season in progress at ``on``, else the next one to start
    (``dates.season_at``). (None, None) when the series dose has no seasonal recommendation.
    """
    return season_at(dose.seasonal_start, dose.seasonal_end, on)


def has_immunity(ctx: Context, antigen: Antigen) -> bool:
    """Table 7-3."""
    immunity = antigen.immunity
    if immunity.clinical_history_codes & ctx.active_codes:
        return True
    for rule in immunity.date_of_birth:
        if ctx.patient.birth_date >= rule.immunity_birth_date:
            continue
        if rule.exclusion_codes & ctx.active_codes:
            continue
        country = ctx.patient.country_of_birth
        if country is None or rule.birth_country is None or _same_country(country, rule.birth_country):
            return True
    return False


def _same_country(a: str, b: str) -> bool:
    def norm(text: str) -> str:
        value = text.replace(".", "").strip().upper()
        return {"USA": "US", "UNITED STATES": "US"}.get(value, value)

    return norm(a) == norm(b)


def antigen_contraindicated(ctx: Context, antigen: Antigen) -> bool:
    """Table 7-5: an antigen contraindication applies to the patient."""
    on = ctx.assessment_date
    for ci in antigen.antigen_contraindications:
        if ci.observation_code not in ctx.active_codes:
            continue
        begin = ctx.birth_plus(ci.begin_age, MIN_DATE)
        end = ctx.birth_plus(ci.end_age, MAX_DATE)
        if begin <= on < end:
            return True
    return False


def contraindicated_vaccines(ctx: Context, antigen: Antigen) -> frozenset[str]:
    """Table 7-6: CVX codes with a vaccine contraindication that applies to the patient."""
    on = ctx.assessment_date
    codes: set[str] = set()
    for ci in antigen.vaccine_contraindications:
        if ci.observation_code not in ctx.active_codes:
            continue
        for vaccine in ci.vaccines:
            begin = ctx.birth_plus(vaccine.begin_age, MIN_DATE)
            end = ctx.birth_plus(vaccine.end_age, MAX_DATE)
            if begin <= on < end:
                codes.add(vaccine.cvx)
    return frozenset(codes)


def minimum_dates(
    ctx: Context, ps: PatientSeries, data: SupportingData, target: TargetDose
) -> tuple[date | None, list[date], list[date], date | None]:
    """FORECASTDTCAN-1: the candidate earliest date, plus the earliest/latest recommended interval dates.

    The candidate earliest date is None when none of FORECASTDTCAN-1's dates exists (no minimum age, no
    applicable minimum interval, no conflict, no seasonal start, no evaluated dose): section 7.5, "If an
    attribute value is empty, then the date calculations will remain empty. No assumptions will be made for the
    attribute." (In 4.64 only the Meningococcal ACWY 2-23 month series' dose 4 has no such date, for a patient
    whose doses 1-3 are skipped and who has no dose.)
    """
    on = ctx.assessment_date
    birth = ctx.patient.birth_date
    candidates: list[date] = []
    rule = age_rule(target.series_dose, on)
    if rule is not None and rule.min_age is not None:
        candidates.append(add_duration(birth, rule.min_age))
    earliest_rec: list[date] = []
    latest_rec: list[date] = []
    for interval in target.series_dose.intervals:
        if not in_effect(interval.effective, interval.cessation, on):
            continue
        reference = interval_reference(ctx, ps, interval, None)
        if reference is None:
            continue
        if interval.min_int is not None:
            candidates.append(add_duration(reference, interval.min_int))
        if interval.earliest_rec_int is not None:
            earliest_rec.append(add_duration(reference, interval.earliest_rec_int))
        if interval.latest_rec_int is not None:
            latest_rec.append(add_duration(reference, interval.latest_rec_int))
    # Latest of all forecast conflict end dates, for the vaccines this target dose would be given with.
    for cvx in {v.cvx for v in target.series_dose.preferable_vaccines if v.forecast_vaccine_type} or {
        v.cvx for v in target.series_dose.preferable_vaccines
    }:
        for _begin, end in conflict_end_dates(ctx, ps, data, cvx, None, None):
            candidates.append(end)
    seasonal_start, _ = season(target.series_dose, on)
    if seasonal_start is not None:
        candidates.append(seasonal_start)
    evaluated = [r.record.date for r in ps.results if r.target_dose is not None or r.inadvertent]
    if evaluated:
        candidates.append(max(evaluated))
    earliest = max(candidates) if candidates else None
    maximum = add_duration(birth, rule.max_age) if rule is not None and rule.max_age is not None else None
    return earliest, earliest_rec, latest_rec, maximum


def dose_number(ps: PatientSeries, on: date) -> int:
    """FORECASTDN-1, with the seasonal start date of the season that applies at the assessment date ``on``."""
    count = 0
    for target in ps.targets:
        if target.status is not TargetDoseStatus.SATISFIED:
            continue
        start, _ = season(target.series_dose, on)
        if start is None or (target.satisfied_by is not None and target.satisfied_by.date >= start):
            count += 1
    return count + 1


def _recommended_vaccines(
    ctx: Context, ps: PatientSeries, target: TargetDose, earliest: date | None, rec: date | None
) -> tuple[str, ...]:
    """FORECASTRECVAC-1."""
    birth = ctx.patient.birth_date
    chosen: list[str] = []
    for vaccine in target.series_dose.preferable_vaccines:
        if not vaccine.forecast_vaccine_type or vaccine.cvx in ps.contraindicated_vaccines:
            continue
        begin = add_duration(birth, vaccine.begin_age) if vaccine.begin_age else MIN_DATE
        end = add_duration(birth, vaccine.end_age) if vaccine.end_age else MAX_DATE
        in_range = any(d is not None and begin <= d < end for d in (earliest, rec))
        if in_range and vaccine.cvx not in chosen:
            chosen.append(vaccine.cvx)
    return tuple(chosen)


def _skip_forward(ctx: Context, ps: PatientSeries, reference: date, completed_group: CompletedGroup) -> None:
    while ps.current < len(ps.targets) and can_skip(
        ctx, ps, ps.targets[ps.current], "Forecast", reference, None, completed_group
    ):
        ps.targets[ps.current].status = TargetDoseStatus.SKIPPED
        ps.current += 1


def forecast_series(
    ctx: Context,
    ps: PatientSeries,
    data: SupportingData,
    antigen: Antigen,
    completed_group: CompletedGroup,
) -> None:
    """Chapter 7 for one evaluated patient series; sets ``ps.status``, ``ps.forecast`` and the reason."""
    on = ctx.assessment_date
    _skip_forward(ctx, ps, on, completed_group)  # 7.1
    immune = has_immunity(ctx, antigen)  # 7.2
    ps.contraindicated_vaccines = contraindicated_vaccines(ctx, antigen)  # 7.3
    for _ in range(len(ps.targets) + 2):  # 7.6 may move to the next target dose; bounded
        if ps.current >= len(ps.targets):
            if any(t.status is TargetDoseStatus.SATISFIED for t in ps.targets):
                ps.status, ps.forecast_reason = SeriesStatus.COMPLETE, "Patient series is complete"
            else:
                ps.status = SeriesStatus.NOT_RECOMMENDED
                ps.forecast_reason = "Not recommended at this time due to past immunization history"
            return
        target = ps.targets[ps.current]
        if immune:
            ps.status, ps.forecast_reason = SeriesStatus.IMMUNE, "Patient has evidence of immunity"
            return
        # Table 7-7 reads "all preferable vaccines": the ones a forecast can name (forecast vaccine type 'Y',
        # FORECASTRECVAC-1). A target dose whose forecast names no vaccine is not blocked by vaccine-level
        # contraindications (DTaP products contraindicated after encephalopathy: DT can still be given).
        forecastable = {v.cvx for v in target.series_dose.preferable_vaccines if v.forecast_vaccine_type}
        if antigen_contraindicated(ctx, antigen) or (forecastable and forecastable <= ps.contraindicated_vaccines):
            ps.status, ps.forecast_reason = SeriesStatus.CONTRAINDICATED, "Patient has a contraindication"
            return
        # Table 7-10. The season applied is in progress or yet to come (it recurs), so this holds only for data
        # whose season cannot recur (an end date with no start date).
        _, seasonal_end = season(target.series_dose, on)
        if seasonal_end is not None and on > seasonal_end:
            ps.status = SeriesStatus.NOT_RECOMMENDED
            ps.forecast_reason = "Past seasonal recommendation end date"
            return
        earliest, earliest_rec, latest_rec, maximum = minimum_dates(ctx, ps, data, target)
        if maximum is not None and (on >= maximum or (earliest is not None and earliest >= maximum)):
            ps.status = SeriesStatus.AGED_OUT
            ps.forecast_reason = (
                "Patient has exceeded the maximum age"
                if on >= maximum
                else "Patient is unable to finish the series prior to the maximum age"
            )
            return
        # 7.6 validate recommendation: the target dose could be skipped at the earliest date (CONDSKIP-2; with
        # no earliest date there is no date to validate the recommendation at).
        if earliest is not None and can_skip(ctx, ps, target, "Forecast", earliest, None, completed_group):
            target.status = TargetDoseStatus.SKIPPED
            ps.current += 1
            continue
        birth = ctx.patient.birth_date
        rule = age_rule(target.series_dose, on)
        unadjusted_rec: date | None
        if rule is not None and rule.earliest_rec_age is not None:
            unadjusted_rec = add_duration(birth, rule.earliest_rec_age)
        elif earliest_rec:
            unadjusted_rec = max(earliest_rec)
        else:
            unadjusted_rec = earliest
        unadjusted_past_due: date | None
        if rule is not None and rule.latest_rec_age is not None:
            unadjusted_past_due = add_duration(birth, rule.latest_rec_age) - _ONE_DAY
        elif latest_rec:
            unadjusted_past_due = max(latest_rec) - _ONE_DAY
        else:
            unadjusted_past_due = None
        # FORECASTDT-5 / -6: adjusted by the earliest date when there is one.
        recommended = later(earliest, unadjusted_rec)
        past_due = later(earliest, unadjusted_past_due) if unadjusted_past_due is not None else None
        latest = maximum - _ONE_DAY if maximum is not None else None
        ps.status, ps.forecast_reason = SeriesStatus.NOT_COMPLETE, None
        ps.forecast = Forecast(
            dose_number=dose_number(ps, on),
            earliest=earliest,
            recommended=recommended,
            past_due=past_due,
            latest=latest,
            unadjusted_recommended=unadjusted_rec,
            unadjusted_past_due=unadjusted_past_due,
            recommended_vaccines=_recommended_vaccines(ctx, ps, target, earliest, recommended),
        )
        return
    ps.status, ps.forecast_reason = SeriesStatus.NOT_RECOMMENDED, "No target dose left to forecast"
