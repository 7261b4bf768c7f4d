"""Conditional skip (section 6.2, reused by 7.1 and 7.6): can the target dose be skipped?

The reference date is the date administered when evaluating, the assessment date when forecasting and the
forecast's earliest date when validating a recommendation (CONDSKIP-2). Conditions are grouped in sets; the
condition logic (AND/OR) decides whether a set is met (table 6-10), the set logic whether the target dose can be
skipped (table 6-11).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from esante.cve.engine.dates import MAX_DATE, MIN_DATE, add_duration
from esante.cve.engine.model import Condition, ConditionalSkip, ConditionSet, in_effect
from esante.cve.engine.patient import EvaluationStatus
from esante.cve.engine.state import Context, PatientSeries, TargetDose

__all__ = ["can_skip", "previous_reference_dose"]

#: Is some relevant patient series of this series group (of the same antigen) complete? (table 6-7)
CompletedGroup = Callable[[str], bool]


def previous_reference_dose(ps: PatientSeries, before: int | None) -> date | None:
    """The date of the immediate previous dose evaluated 'Valid' or 'Not Valid' and not inadvertent (CALCDTINT-1).

    ``before`` is the history index of the dose being evaluated (None: the whole evaluated history, as when
    forecasting).
    """
    for result in reversed(ps.results):
        if before is not None and result.record.index >= before:
            continue
        if result.inadvertent:
            continue
        if result.status in (EvaluationStatus.VALID, EvaluationStatus.NOT_VALID):
            return result.record.date
    return None


def _count(ctx: Context, ps: PatientSeries, condition: Condition, reference: date, before: int | None) -> int:
    """CONDSKIP-1: the number of conditional doses administered.

    CONDSKIP-1 counts doses whose vaccine type "is one of the conditional skip vaccine types". A condition with
    no vaccine types (``<vaccineTypes/>``, e.g. DTaP's "start at 12 months" dose 7 or Hib's risk child series
    dose 1, both "Total") counts the doses of the series' own antigen, the antigen administered records of
    section 4.2 — never the patient's other vaccines (an MMR given the same day is no Hib dose).
    """
    birth = ctx.patient.birth_date
    begin_age = add_duration(birth, condition.begin_age) if condition.begin_age else MIN_DATE
    end_age = add_duration(birth, condition.end_age) if condition.end_age else MAX_DATE
    start = condition.start_date or MIN_DATE
    end = condition.end_date or MAX_DATE
    statuses = {r.record.index: r.status for r in ps.results}
    count = 0
    for record in ctx.history:
        if before is not None and record.index >= before:
            continue
        if condition.vaccine_types:
            if record.cvx not in condition.vaccine_types:
                continue
        elif record.index not in statuses:  # not an antigen administered record of this series
            continue
        if not (begin_age <= record.date < end_age and start <= record.date < end):
            continue
        if condition.dose_type == "valid" and statuses.get(record.index) is not EvaluationStatus.VALID:
            continue
        count += 1
    return count


def _condition_met(
    ctx: Context,
    ps: PatientSeries,
    condition: Condition,
    reference: date,
    before: int | None,
    completed_group: CompletedGroup,
) -> bool:
    kind = condition.condition_type
    birth = ctx.patient.birth_date
    if kind == "age":  # table 6-6
        begin = add_duration(birth, condition.begin_age) if condition.begin_age else MIN_DATE
        end = add_duration(birth, condition.end_age) if condition.end_age else MAX_DATE
        return begin <= reference < end
    if kind == "completed series":  # table 6-7
        return any(completed_group(group) for group in condition.series_groups)
    if kind == "interval":  # table 6-8, CALCDTSKIP-5
        previous = previous_reference_dose(ps, before)
        if previous is None or condition.interval is None:
            return False
        return reference >= add_duration(previous, condition.interval)
    if kind.startswith("vaccine count by"):  # table 6-9
        if condition.dose_count is None:
            return False
        number = _count(ctx, ps, condition, reference, before)
        logic = condition.dose_count_logic
        if logic.startswith("greater"):
            return number > condition.dose_count
        if logic.startswith("equal"):
            return number == condition.dose_count
        if logic.startswith("less"):
            return number < condition.dose_count
        return False
    return False


def _set_met(
    ctx: Context,
    ps: PatientSeries,
    cset: ConditionSet,
    reference: date,
    before: int | None,
    completed_group: CompletedGroup,
) -> bool:
    results = [_condition_met(ctx, ps, c, reference, before, completed_group) for c in cset.conditions]
    if not results:
        return False
    return any(results) if cset.condition_logic == "OR" else all(results)  # table 6-10


def can_skip(
    ctx: Context,
    ps: PatientSeries,
    target: TargetDose,
    context: str,
    reference: date,
    before: int | None,
    completed_group: CompletedGroup,
) -> bool:
    """Table 6-11 for the conditional skips of ``target`` usable in ``context`` ("Evaluation" or "Forecast")."""
    skips: tuple[ConditionalSkip, ...] = target.series_dose.conditional_skips
    for skip in skips:
        if skip.context.lower() not in (context.lower(), "both"):
            continue
        sets = [s for s in skip.sets if in_effect(s.effective, s.cessation, reference)]
        if not sets:
            continue
        met = [_set_met(ctx, ps, s, reference, before, completed_group) for s in sets]
        if all(met) if skip.set_logic == "AND" else any(met):
            return True
    return False
