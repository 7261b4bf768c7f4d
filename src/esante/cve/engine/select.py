"""Select the best patient series of an antigen (chapter 8).

Per series group: pre-filter (8.1, SELECTB-24 / SELECTSCORE-2), a single prioritized series when one stands out
(table 8-3), otherwise classify (table 8-5) and score (tables 8-7, 8-9, 8-11) and keep the highest score, ties
broken by series preference (SELECTBEST-2). Then table 8-14 keeps the prioritized series that are needed given
the equivalent series groups.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date

from esante.cve.engine.dates import MAX_DATE, add_duration
from esante.cve.engine.model import in_effect
from esante.cve.engine.patient import EvaluationStatus, SeriesStatus, TargetDoseStatus
from esante.cve.engine.state import Context, PatientSeries

__all__ = ["select_best_series"]


def _is_complete(ps: PatientSeries) -> bool:
    return ps.status is SeriesStatus.COMPLETE


def _is_in_process(ps: PatientSeries) -> bool:
    """SELECTB-16."""
    return ps.status is SeriesStatus.NOT_COMPLETE and ps.valid_count > 0


def _first_valid_date(ps: PatientSeries) -> date | None:
    dates = [r.record.date for r in ps.results if r.status is EvaluationStatus.VALID]
    return min(dates) if dates else None


def _scorable(ctx: Context, group: Sequence[PatientSeries]) -> list[PatientSeries]:
    """SELECTB-24 then SELECTSCORE-2."""
    all_contraindicated = all(p.status is SeriesStatus.CONTRAINDICATED for p in group)
    candidates = [p for p in group if p.status is not SeriesStatus.CONTRAINDICATED or all_contraindicated]
    best_risk_priority = min((p.series.series_priority for p in group if p.series.series_type == "Risk"), default="Z")
    no_valid_anywhere = all(p.valid_count == 0 for p in group)
    has_default = any(p.series.default_series for p in group)
    chosen = []
    for ps in group:
        kind = ps.series.series_type
        candidate = ps in candidates
        if kind == "Risk":
            ok = candidate and ps.series.series_priority <= best_risk_priority
        elif kind == "Standard":
            first_valid = _first_valid_date(ps)
            if first_valid is not None:
                start_limit = (
                    add_duration(ctx.patient.birth_date, ps.series.max_age_to_start)
                    if ps.series.max_age_to_start
                    else MAX_DATE
                )
                ok = candidate and first_valid < start_limit
            else:
                ok = candidate and no_valid_anywhere and not has_default
        else:  # Evaluation Only
            ok = _is_complete(ps)
        if ok:
            chosen.append(ps)
    return chosen


def _finish_date(ctx: Context, ps: PatientSeries) -> date | None:
    """SELECTB-12: earliest date plus the (latest) minimum interval of each remaining target dose."""
    if ps.forecast is None or ps.forecast.earliest is None:
        return None
    finish = ps.forecast.earliest
    for target in ps.targets[ps.current + 1 :]:
        spans = [
            add_duration(finish, i.min_int)
            for i in target.series_dose.intervals
            if i.min_int is not None and i.from_previous and in_effect(i.effective, i.cessation, ctx.assessment_date)
        ]
        if spans:
            finish = max(spans)
    return finish


def _completable(ctx: Context, ps: PatientSeries) -> bool:
    """SELECTB-3: the forecast finish date is before the maximum age date of the last target dose."""
    if ps.status is not SeriesStatus.NOT_COMPLETE:
        return False
    finish = _finish_date(ctx, ps)
    if finish is None:
        return False
    last = ps.series.doses[-1]
    max_ages = [a.max_age for a in last.ages if a.max_age is not None]
    if not max_ages:
        return True
    return finish < add_duration(ctx.patient.birth_date, max_ages[0])


def _points(flags: list[bool], yes: int, tie: int | None, no: int) -> list[int]:
    """Award points: ``yes`` when true for one series only, ``tie`` when true for two or more, ``no`` when false."""
    true_count = sum(flags)
    out = []
    for flag in flags:
        if not flag:
            out.append(no)
        elif true_count >= 2 and tie is not None:
            out.append(tie)
        else:
            out.append(yes)
    return out


def _score(ctx: Context, series: list[PatientSeries], kind: str) -> list[int]:
    scores = [0] * len(series)

    def add(points: list[int]) -> None:
        for i, p in enumerate(points):
            scores[i] += p

    valid = [p.valid_count for p in series]
    most_valid = [v >= max(valid) for v in valid]
    if kind == "complete":  # table 8-7
        add(_points(most_valid, 1, 0, -1))
        return scores
    completable = [_completable(ctx, p) for p in series]
    if kind == "in-process":  # table 8-9
        all_valid = [
            p.series.product_path
            and all(r.status is EvaluationStatus.VALID for r in p.results if r.target_dose is not None)
            for p in series
        ]
        add(_points(all_valid, 2, None, -2))
        add(_points(completable, 3, None, -3))
        add(_points(most_valid, 2, 0, -2))
        remaining = [sum(1 for t in p.targets if t.status is TargetDoseStatus.NOT_SATISFIED) for p in series]
        closest = [r <= min(remaining) for r in remaining]
        add(_points(closest, 2, 0, -2))
        finishes = [_finish_date(ctx, p) if c else None for p, c in zip(series, completable, strict=True)]
        known = [f for f in finishes if f is not None]
        earliest_finish = [f is not None and f <= min(known) for f in finishes]
        add(_points(earliest_finish, 1, 0, -1))
        return scores
    # no valid doses: table 8-11
    starts = [p.forecast.earliest if p.forecast and p.forecast.earliest else None for p in series]
    known_starts = [s for s in starts if s is not None]
    start_earliest = [s is not None and s <= min(known_starts) for s in starts]
    add(_points(start_earliest, 1, 0, -1))
    add(_points(completable, 1, None, -1))
    add(_points([p.series.product_path for p in series], -1, None, 1))
    return scores


def _startable(ctx: Context, ps: PatientSeries) -> bool:
    """Whether the patient has reached the series' minimum age to start at the assessment date.

    The v4.5 text uses only the maximum age to start (SELECTSCORE-2, for series with valid doses); the supporting
    data also define a minimum. A series with no valid dose that the patient is too young to start is no path to
    immunity yet: it is set aside before its series group is examined (so the 50-years-and-older pneumococcal
    series is not forecast for a child whose childhood series is complete).
    """
    low = ps.series.min_age_to_start
    return low is None or ctx.assessment_date >= add_duration(ctx.patient.birth_date, low)


def _prioritized(ctx: Context, group: list[PatientSeries]) -> PatientSeries | None:
    group = [p for p in group if p.valid_count > 0 or _startable(ctx, p)]
    if not group:
        return None
    scorable = _scorable(ctx, group)
    defaults = [p for p in group if p.series.default_series]
    complete = [p for p in scorable if _is_complete(p)]
    in_process = [p for p in scorable if _is_in_process(p)]
    # table 8-3
    if not scorable:
        return defaults[0] if len(defaults) == 1 else None
    if len(scorable) == 1:
        return scorable[0]
    if len(complete) == 1:
        return complete[0]
    if not complete and len(in_process) == 1:
        return in_process[0]
    if not complete and not in_process and len(defaults) == 1 and defaults[0] in scorable:
        return defaults[0]
    # table 8-5
    if len(complete) >= 2:
        pool, kind = complete, "complete"
    elif len(in_process) >= 2:
        pool, kind = in_process, "in-process"
    elif all(p.valid_count == 0 for p in scorable):
        pool, kind = scorable, "none"
    else:
        pool, kind = scorable, "in-process"
    scores = _score(ctx, pool, kind)
    best = max(scores)
    tied = [p for p, s in zip(pool, scores, strict=True) if s == best]
    return min(tied, key=lambda p: p.series.series_preference)  # SELECTBEST-2


def select_best_series(ctx: Context, relevant: Sequence[PatientSeries]) -> list[PatientSeries]:
    """Chapter 8 for the relevant patient series of one antigen."""
    groups: dict[str, list[PatientSeries]] = defaultdict(list)
    for ps in relevant:
        groups[ps.series.series_group].append(ps)
    prioritized: dict[str, PatientSeries] = {}
    for name, group in groups.items():
        chosen = _prioritized(ctx, group)
        if chosen is not None:
            prioritized[name] = chosen

    def equivalents(ps: PatientSeries) -> list[PatientSeries]:
        """The prioritized series of the groups this series declares equivalent (a one-way declaration)."""
        names = set(ps.series.equivalent_series_groups) - {ps.series.series_group}
        return [prioritized[n] for n in names if n in prioritized]

    best: list[PatientSeries] = []
    for ps in prioritized.values():  # table 8-14
        if _is_complete(ps):
            best.append(ps)
            continue
        others = equivalents(ps)
        if any(_is_complete(o) for o in others) or ps.series.series_type == "Evaluation Only":
            continue
        if ps.series.series_type == "Risk" or not any(o.series.series_type == "Risk" for o in others):
            best.append(ps)
    return best
