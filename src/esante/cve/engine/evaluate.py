"""Evaluate the immunization history against one relevant patient series (section 4.4, chapter 6).

The loop of figure 4-6: take the current target dose, evaluate the next antigen administered record against it
(dose condition 6.1, conditional skip 6.2, inadvertent vaccine 6.3, age 6.4, preferable then allowable interval
6.5/6.6, live-virus conflict 6.7, preferable then allowable vaccine 6.8/6.9) and satisfy the target dose (6.10)
or not; a satisfied last target dose that is recurring is copied (step 6a); records left after the last target
dose are extraneous (step 6b).
"""

from __future__ import annotations

from datetime import date

from esante.cve.engine.dates import MAX_DATE, MIN_DATE, add_duration
from esante.cve.engine.model import (
    AllowableInterval,
    IntervalRule,
    LiveVirusConflict,
    SupportingData,
    in_effect,
)
from esante.cve.engine.patient import EvaluationReason, EvaluationStatus, TargetDoseStatus
from esante.cve.engine.skip import CompletedGroup, can_skip, previous_reference_dose
from esante.cve.engine.state import AntigenDose, Context, DoseResult, PatientSeries, TargetDose, age_rule

__all__ = ["conflict_end_dates", "evaluate_series", "interval_reference"]


def interval_reference(
    ctx: Context, ps: PatientSeries, interval: IntervalRule | AllowableInterval, before: int | None
) -> date | None:
    """The reference dose date of an interval (CALCDTINT-1, -2, -8, -9); None when the interval does not apply."""
    if interval.from_previous:
        return previous_reference_dose(ps, before)
    if interval.from_target_dose is not None:
        for target in ps.targets:
            if target.series_dose.dose_number != interval.from_target_dose:
                continue
            satisfied = target.satisfied_by
            if satisfied is not None and (before is None or satisfied.index < before):
                return satisfied.date
            return None
        return None
    if isinstance(interval, IntervalRule) and interval.from_most_recent:
        inadvertent = {r.record.index for r in ps.results if r.inadvertent}
        for record in reversed(ctx.history):
            if before is not None and record.index >= before:
                continue
            if record.cvx in interval.from_most_recent and record.index not in inadvertent:
                return record.date
        return None
    if isinstance(interval, IntervalRule) and interval.from_relevant_obs:
        dates = [o.date for o in ctx.patient.observations if o.code == interval.from_relevant_obs and o.date]
        return max(dates) if dates else None
    return None


def _status_for_conflict(ctx: Context, ps: PatientSeries, record: AntigenDose) -> EvaluationStatus | None:
    own = ps.status_of(record.index)
    if own is not None and record.antigen == ps.series.antigen:
        return own
    return ctx.dose_status.get(record.index)


def conflict_end_dates(
    ctx: Context, ps: PatientSeries, data: SupportingData, current_cvx: str, on: date | None, before: int | None
) -> list[tuple[date, date]]:
    """(begin, end) of each live-virus conflict window a previous dose opens for ``current_cvx`` (CALCDTCONFLICT)."""
    conflicts: tuple[LiveVirusConflict, ...] = data.live_virus_conflicts.get(current_cvx, ())
    if not conflicts:
        return []
    windows: list[tuple[date, date]] = []
    for record in ctx.history:
        if before is not None and record.index >= before:
            continue
        if on is not None and record.date > on:
            continue
        for conflict in conflicts:
            if conflict.previous_cvx != record.cvx:
                continue
            begin = add_duration(record.date, conflict.begin_interval) if conflict.begin_interval else record.date
            status = _status_for_conflict(ctx, ps, record)
            span = conflict.min_end_interval if status in (None, EvaluationStatus.VALID) else conflict.end_interval
            if span is None:
                continue
            windows.append((begin, add_duration(record.date, span)))
    return windows


def _evaluate_age(ctx: Context, target: TargetDose, on: date) -> EvaluationReason | str | None:
    """Table 6-15: None (valid), 'grace', TOO_YOUNG or TOO_OLD."""
    rule = age_rule(target.series_dose, on)
    if rule is None:
        return None
    birth = ctx.patient.birth_date
    abs_min = add_duration(birth, rule.abs_min_age) if rule.abs_min_age else MIN_DATE
    minimum = add_duration(birth, rule.min_age) if rule.min_age else MIN_DATE
    maximum = add_duration(birth, rule.max_age) if rule.max_age else MAX_DATE
    if on < abs_min:
        return EvaluationReason.TOO_YOUNG
    if on >= maximum:
        return EvaluationReason.TOO_OLD
    if on < minimum:
        return "grace"
    return None


def _preferable_intervals_ok(ctx: Context, ps: PatientSeries, target: TargetDose, record: AntigenDose) -> bool:
    """Table 6-18 for every preferable interval in effect; no interval means 'valid'."""
    for interval in target.series_dose.intervals:
        if not in_effect(interval.effective, interval.cessation, record.date):
            continue
        reference = interval_reference(ctx, ps, interval, record.index)
        if reference is None:
            continue
        abs_min = add_duration(reference, interval.abs_min_int) if interval.abs_min_int else MIN_DATE
        if record.date < abs_min:
            return False
    return True


def _allowable_intervals_ok(ctx: Context, ps: PatientSeries, target: TargetDose, record: AntigenDose) -> bool:
    """Table 6-21; a target dose without allowable intervals cannot be validated by them."""
    intervals = [i for i in target.series_dose.allowable_intervals if in_effect(i.effective, i.cessation, record.date)]
    if not intervals:
        return False
    for interval in intervals:
        reference = interval_reference(ctx, ps, interval, record.index)
        if reference is None:
            continue
        abs_min = add_duration(reference, interval.abs_min_int) if interval.abs_min_int else MIN_DATE
        if record.date < abs_min:
            return False
    return True


def _in_conflict(ctx: Context, ps: PatientSeries, data: SupportingData, record: AntigenDose) -> bool:
    """CONFLICT-3: on or after a conflict begin date and before its end date."""
    windows = conflict_end_dates(ctx, ps, data, record.cvx, record.date, record.index)
    return any(begin <= record.date < end for begin, end in windows)


def _preferable_vaccine(ctx: Context, target: TargetDose, record: AntigenDose) -> bool:
    """Table 6-26 (volume is reported, never used to invalidate; the trade name is compared through the MVX)."""
    birth = ctx.patient.birth_date
    for vaccine in target.series_dose.preferable_vaccines:
        if vaccine.cvx != record.cvx:
            continue
        begin = add_duration(birth, vaccine.begin_age) if vaccine.begin_age else MIN_DATE
        end = add_duration(birth, vaccine.end_age) if vaccine.end_age else MAX_DATE
        if not (begin <= record.date < end):
            continue
        if vaccine.mvx and record.dose.mvx and vaccine.mvx.upper() != record.dose.mvx.upper():
            continue
        return True
    return False


def _allowable_vaccine(ctx: Context, target: TargetDose, record: AntigenDose) -> bool:
    """Table 6-29."""
    birth = ctx.patient.birth_date
    for vaccine in target.series_dose.allowable_vaccines:
        if vaccine.cvx != record.cvx:
            continue
        begin = add_duration(birth, vaccine.begin_age) if vaccine.begin_age else MIN_DATE
        end = add_duration(birth, vaccine.end_age) if vaccine.end_age else MAX_DATE
        if begin <= record.date < end:
            return True
    return False


def evaluate_dose(
    ctx: Context, ps: PatientSeries, data: SupportingData, target: TargetDose, record: AntigenDose
) -> DoseResult:
    """Sections 6.3 to 6.10 for one record against one (not skipped) target dose."""
    result = DoseResult(record, target_dose=target.number)
    # 6.3 inadvertent vaccine
    if any(v.cvx == record.cvx for v in target.series_dose.inadvertent_vaccines):
        result.status = EvaluationStatus.NOT_VALID
        result.reasons.append(EvaluationReason.INADVERTENT)
        result.inadvertent = True
        return result
    reasons: list[EvaluationReason] = []
    # 6.4 age
    age = _evaluate_age(ctx, target, record.date)
    too_old = age is EvaluationReason.TOO_OLD
    if age is EvaluationReason.TOO_YOUNG or too_old:
        reasons.append(age)  # type: ignore[arg-type]
    elif age == "grace":
        result.reasons.append(EvaluationReason.GRACE_AGE)
    # 6.5 / 6.6 intervals
    if not _preferable_intervals_ok(ctx, ps, target, record) and not _allowable_intervals_ok(ctx, ps, target, record):
        reasons.append(EvaluationReason.TOO_SOON)
    # 6.7 live-virus conflict
    if _in_conflict(ctx, ps, data, record):
        reasons.append(EvaluationReason.LIVE_VIRUS_CONFLICT)
    # 6.8 / 6.9 vaccine
    if not _preferable_vaccine(ctx, target, record) and not _allowable_vaccine(ctx, target, record):
        reasons.append(EvaluationReason.NOT_PREFERABLE_OR_ALLOWABLE)
    # 6.10 satisfy target dose
    if too_old:
        result.status = EvaluationStatus.EXTRANEOUS
        result.reasons = reasons
    elif reasons:
        result.status = EvaluationStatus.NOT_VALID
        result.reasons = reasons
    else:
        result.status = EvaluationStatus.VALID
    return result


def _advance(ps: PatientSeries) -> None:
    """Steps 5 and 6 of figure 4-6: move past the current target dose.

    A satisfied recurring target dose is followed by a new, identical target dose. The copy is inserted right
    after it rather than at the end of the series: a recurring dose that is not the last one (COVID-19's seasonal
    dose 1, followed by a dose 2 that only patients of 65 years and older need) must recur all the same, and for a
    last dose (Td boosters, influenza) both readings are the same.
    """
    target = ps.targets[ps.current]
    if target.series_dose.recurring and target.status is TargetDoseStatus.SATISFIED:
        ps.targets.insert(ps.current + 1, TargetDose(target.series_dose, target.number + 1))
        for later in ps.targets[ps.current + 2 :]:
            later.number += 1
    ps.current += 1


def evaluate_series(
    ctx: Context,
    ps: PatientSeries,
    data: SupportingData,
    records: list[AntigenDose],
    completed_group: CompletedGroup,
) -> None:
    """Figure 4-6 for one relevant patient series over the antigen's records (sorted by date)."""
    for record in records:
        # 6.1 dose administered condition
        expiry = record.dose.lot_expiration
        if (expiry is not None and record.date > expiry) or record.dose.dose_condition:
            reason = (
                EvaluationReason.EXPIRED if record.dose.dose_condition is False else EvaluationReason.DOSE_CONDITION
            )
            target_number = ps.targets[ps.current].number if ps.current < len(ps.targets) else None
            ps.results.append(DoseResult(record, EvaluationStatus.SUB_STANDARD, [reason], target_number))
            continue
        # 6.2 conditional skip (may skip several target doses in a row)
        while ps.current < len(ps.targets) and can_skip(
            ctx, ps, ps.targets[ps.current], "Evaluation", record.date, record.index, completed_group
        ):
            ps.targets[ps.current].status = TargetDoseStatus.SKIPPED
            _advance(ps)
        if ps.current >= len(ps.targets):
            ps.results.append(DoseResult(record, EvaluationStatus.EXTRANEOUS, [EvaluationReason.SERIES_COMPLETE], None))
            continue
        target = ps.targets[ps.current]
        result = evaluate_dose(ctx, ps, data, target, record)
        ps.results.append(result)
        if result.status is EvaluationStatus.VALID:
            target.status = TargetDoseStatus.SATISFIED
            target.satisfied_by = record
            _advance(ps)
