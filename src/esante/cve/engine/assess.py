"""The whole CDSi process model (chapter 4) for one patient at one assessment date.

gather (4.1: the caller passes :class:`Patient` and :class:`SupportingData`) → organize the history into
antigen administered records (4.2) → create the relevant patient series (chapter 5) → evaluate and forecast each
(chapter 6 and 7) → select the best patient series per antigen (chapter 8) → vaccine-group forecasts (chapter 9).

Pure: no I/O, no clock (the assessment date is an argument), no global state; the supporting data are only read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date

from esante.cve.engine.dates import MAX_DATE, MIN_DATE, add_duration, later
from esante.cve.engine.evaluate import evaluate_series
from esante.cve.engine.forecast import dose_number, forecast_series
from esante.cve.engine.model import Antigen, AntigenSeries, SupportingData, normalize_cvx
from esante.cve.engine.patient import (
    AdministeredDose,
    AntigenForecast,
    Assessment,
    DoseEvaluation,
    EvaluationStatus,
    Forecast,
    Patient,
    SeriesStatus,
    VaccineGroupForecast,
)
from esante.cve.engine.select import select_best_series
from esante.cve.engine.state import AntigenDose, Context, PatientSeries

__all__ = ["assess"]

_GENDERS = {"f": "female", "female": "female", "m": "male", "male": "male"}


def _organize(ctx: Context, data: SupportingData) -> dict[str, list[AntigenDose]]:
    """Section 4.2: one antigen administered record per antigen of each dose, by antigen then date."""
    by_antigen: dict[str, list[AntigenDose]] = defaultdict(list)
    birth = ctx.patient.birth_date
    for record in ctx.history:
        for association in data.cvx_map.get(record.cvx, ()):
            begin = add_duration(birth, association.begin_age) if association.begin_age else MIN_DATE
            end = add_duration(birth, association.end_age) if association.end_age else MAX_DATE
            if begin <= record.date < end:
                by_antigen[association.antigen].append(AntigenDose(record.index, record.dose, association.antigen))
    return by_antigen


def _relevant(ctx: Context, series: AntigenSeries) -> bool:
    """Tables 5-4 and 5-5."""
    gender = _GENDERS.get(ctx.patient.gender.strip().lower(), "unknown")
    if series.required_genders and gender not in series.required_genders:
        return False
    if series.series_type in ("Standard", "Evaluation Only"):
        return True
    for indication in series.indications:
        if indication.observation_code is None or indication.observation_code not in ctx.active_codes:
            continue
        begin = ctx.birth_plus(indication.begin_age, MIN_DATE)
        end = ctx.birth_plus(indication.end_age, MAX_DATE)
        if begin <= ctx.assessment_date < end:
            return True
    return False


def _run_antigen(
    ctx: Context, data: SupportingData, antigen: Antigen, records: list[AntigenDose]
) -> tuple[list[PatientSeries], list[PatientSeries]]:
    relevant = [PatientSeries.start(s) for s in antigen.series if _relevant(ctx, s)]
    in_progress: set[int] = set()

    def process(ps: PatientSeries) -> None:
        if ps.done or id(ps) in in_progress:
            return
        in_progress.add(id(ps))
        evaluate_series(ctx, ps, data, records, completed_group)
        forecast_series(ctx, ps, data, antigen, completed_group)
        ps.done = True
        in_progress.discard(id(ps))

    def completed_group(group: str) -> bool:
        """Table 6-7: some relevant patient series of that series group is complete (processed first if need be)."""
        found = False
        for other in relevant:
            if other.series.series_group == group:
                process(other)
                found = found or other.status is SeriesStatus.COMPLETE
        return found

    for ps in relevant:
        process(ps)
    return relevant, select_best_series(ctx, relevant)


def _priority(ps: PatientSeries) -> bool:
    """FORECASTPRIORITY-1."""
    if ps.status is not SeriesStatus.NOT_COMPLETE or ps.current >= len(ps.targets):
        return False
    intervals = ps.targets[ps.current].series_dose.intervals
    return bool(intervals) and all(i.priority for i in intervals)


def _guidance(ctx: Context, antigen: Antigen, ps: PatientSeries) -> tuple[str, ...]:
    """FORECASTGUIDANCE-1: the series' guidance, the guidance of indications the patient has, and the text of the
    contraindications that apply."""
    texts: list[str] = list(ps.series.admin_guidance)
    texts += [i.guidance for i in ps.series.indications if i.guidance and i.observation_code in ctx.active_codes]
    texts += [c.text for c in antigen.antigen_contraindications if c.observation_code in ctx.active_codes and c.text]
    texts += [c.text for c in antigen.vaccine_contraindications if c.observation_code in ctx.active_codes and c.text]
    return tuple(dict.fromkeys(t for t in texts if t))


def _antigen_forecast(
    ps: PatientSeries, original_index: list[int], on: date, guidance: tuple[str, ...] = ()
) -> AntigenForecast:
    evaluations = tuple(
        DoseEvaluation(
            dose_index=original_index[r.record.index],
            date_administered=r.record.date,
            cvx=r.record.cvx,
            antigen=ps.series.antigen,
            series=ps.series.name,
            target_dose=r.target_dose,
            status=r.status or EvaluationStatus.EXTRANEOUS,
            reasons=tuple(r.reasons),
        )
        for r in ps.results
    )
    return AntigenForecast(
        antigen=ps.series.antigen,
        series=ps.series.name,
        series_type=ps.series.series_type,
        series_group=ps.series.series_group,
        status=ps.status or SeriesStatus.NOT_COMPLETE,
        forecast=ps.forecast if ps.status is SeriesStatus.NOT_COMPLETE else None,
        reason=ps.forecast_reason,
        evaluations=evaluations,
        priority_forecast=_priority(ps),
        dose_number=dose_number(ps, on),
        guidance=guidance,
    )


def _group_status(members: list[AntigenForecast]) -> SeriesStatus:
    """Table 9-4 (and SINGLEANTVG-1 when there is one member)."""
    statuses = [m.status for m in members]
    for status in (
        SeriesStatus.CONTRAINDICATED,
        SeriesStatus.AGED_OUT,
        SeriesStatus.NOT_RECOMMENDED,
        SeriesStatus.NOT_COMPLETE,
    ):
        if status in statuses:
            return status
    if all(s is SeriesStatus.IMMUNE for s in statuses):
        return SeriesStatus.IMMUNE
    return SeriesStatus.COMPLETE


def _single_antigen_status(members: list[AntigenForecast]) -> SeriesStatus:
    """SINGLEANTVG-1 when several best series of one antigen are blended (e.g. a complete standard series and a
    risk series that asks for more doses, or a childhood series the patient aged out of and the adult series).

    The rule names "the" patient series forecast; with several, the status that states what is still to be done
    is taken: a contraindication, else a dose still needed, else completion or immunity, else the others.
    """
    order = (
        SeriesStatus.CONTRAINDICATED,
        SeriesStatus.NOT_COMPLETE,
        SeriesStatus.COMPLETE,
        SeriesStatus.IMMUNE,
        SeriesStatus.NOT_RECOMMENDED,
        SeriesStatus.AGED_OUT,
    )
    statuses = {m.status for m in members}
    return next(status for status in order if status in statuses)


def _group_forecast(
    name: str,
    full_group: bool,
    single_antigen: bool,
    series_type: str,
    members: list[AntigenForecast],
    last_dose: date | None,
) -> VaccineGroupForecast:
    """Chapter 9: FORECASTVG-1..9, FORECASTDN-2, SINGLEANTVG-1/2, MULTIANTVG-1."""
    status = _single_antigen_status(members) if single_antigen else _group_status(members)
    forecasts = [m.forecast for m in members if m.forecast is not None and m.status is SeriesStatus.NOT_COMPLETE]
    reasons = tuple(dict.fromkeys(m.reason for m in members if m.reason))
    guidance = tuple(dict.fromkeys(t for m in members for t in m.guidance))
    if status is not SeriesStatus.NOT_COMPLETE or not forecasts:
        return VaccineGroupForecast(name, series_type, status, None, reasons, tuple(members), guidance)
    # A patient series forecast may have no earliest date (section 7.5: an empty candidate earliest date stays
    # empty); the rules below then read only the dates that exist.
    earliest_dates = [f.earliest for f in forecasts if f.earliest is not None]
    earliest: date | None
    if not earliest_dates:
        earliest = None
    elif single_antigen:
        earliest = min(earliest_dates)
    elif any(m.priority_forecast for m in members):
        earliest = max(d for d in (min(earliest_dates), last_dose) if d is not None)
    else:
        earliest = max(earliest_dates)
    recommendeds = [f.recommended for f in forecasts if f.recommended is not None]
    recommended = later(min(recommendeds), earliest) if recommendeds else earliest
    past_dues = [f.past_due for f in forecasts if f.past_due is not None]
    past_due = later(min(past_dues), earliest) if past_dues else None
    latests = [f.latest for f in forecasts if f.latest is not None]
    unadjusted_recs = [f.unadjusted_recommended for f in forecasts if f.unadjusted_recommended]
    unadjusted_pds = [f.unadjusted_past_due for f in forecasts if f.unadjusted_past_due]
    numbers = [m.dose_number for m in members if m.status in (SeriesStatus.NOT_COMPLETE, SeriesStatus.COMPLETE)]
    vaccines: list[str] = []
    for f in forecasts:
        vaccines.extend(c for c in f.recommended_vaccines if c not in vaccines)
    forecast = Forecast(
        dose_number=(min(numbers) if full_group else max(numbers)) if numbers else None,
        earliest=earliest,
        recommended=recommended,
        past_due=past_due,
        latest=min(latests) if latests else None,
        unadjusted_recommended=min(unadjusted_recs) if unadjusted_recs else None,
        unadjusted_past_due=min(unadjusted_pds) if unadjusted_pds else None,
        recommended_vaccines=tuple(vaccines),
    )
    return VaccineGroupForecast(name, series_type, status, forecast, reasons, tuple(members), guidance)


def _root(parent: dict[str, str], x: str) -> str:
    """Union-find root of a series group."""
    parent.setdefault(x, x)
    while parent[x] != x:
        x = parent[x]
    return x


def _equivalent_paths(data: SupportingData, best: dict[str, list[PatientSeries]], antigens: Iterable[str]) -> bool:
    """Whether the best series of each antigen lie in equivalent series groups (section 4.6, chapter 9).

    Best series from equivalent series groups are alternative or successive paths to the same protection and are
    blended into one vaccine-group forecast; best series from non-equivalent groups are only blended with best
    series of the same series type. Equivalence is read from the supporting data's declarations in either
    direction (a standard series naming the risk group).
    """
    for antigen in antigens:
        series = best.get(antigen, [])
        if len(series) < 2:
            continue
        parent: dict[str, str] = {}
        for definition in data.antigens[antigen].series:
            for other in definition.equivalent_series_groups:
                parent[_root(parent, definition.series_group)] = _root(parent, other)
        if len({_root(parent, ps.series.series_group) for ps in series}) > 1:
            return False
    return True


def _dose_status(best: dict[str, list[PatientSeries]]) -> dict[int, EvaluationStatus]:
    """Each dose's status across its antigens' best series: valid only if valid for every one of them."""
    status: dict[int, EvaluationStatus] = {}
    for series_list in best.values():
        for ps in series_list[:1]:
            for result in ps.results:
                if result.status is None:
                    continue
                previous = status.get(result.record.index)
                if previous is None or previous is EvaluationStatus.VALID:
                    status[result.record.index] = result.status
    return status


def _has_live_conflicts(history: tuple[AntigenDose, ...], data: SupportingData) -> bool:
    for current in history:
        for conflict in data.live_virus_conflicts.get(current.cvx, ()):
            if any(p.cvx == conflict.previous_cvx and p.date < current.date for p in history):
                return True
    return False


def assess(
    data: SupportingData,
    patient: Patient,
    assessment_date: date,
    vaccine_groups: Iterable[str] | None = None,
) -> Assessment:
    """Evaluate the patient's history and forecast, per antigen and per vaccine group.

    ``vaccine_groups`` limits the work to those groups (the antigens of the doses in the history are always
    evaluated, since a live-virus conflict needs the status of a dose of another antigen).
    """
    order = sorted(range(len(patient.doses)), key=lambda i: patient.doses[i].date_administered)
    original_index = list(order)
    history = tuple(AntigenDose(position, _normalized(patient.doses[i]), "") for position, i in enumerate(order))
    on = assessment_date
    active = frozenset(o.code for o in patient.observations if o.end is None or o.end >= on)
    ctx = Context(patient, on, history, active)
    records = _organize(ctx, data)
    if vaccine_groups is None:
        groups = list(data.vaccine_groups.values())
    else:
        wanted = {g.lower() for g in vaccine_groups}
        groups = [g for g in data.vaccine_groups.values() if g.name.lower() in wanted]
    antigen_names = {a for g in groups for a in g.antigens} | set(records)
    antigens = [data.antigens[n] for n in sorted(antigen_names) if n in data.antigens]

    def run_all() -> dict[str, list[PatientSeries]]:
        return {a.name: _run_antigen(ctx, data, a, records.get(a.name, []))[1] for a in antigens}

    best = run_all()
    if _has_live_conflicts(history, data):
        for _ in range(3):  # the statuses of earlier doses settle in a pass or two
            statuses = _dose_status(best)
            if statuses == ctx.dose_status:
                break
            ctx.dose_status = statuses
            best = run_all()

    antigen_forecasts = {
        name: [_antigen_forecast(ps, original_index, on, _guidance(ctx, data.antigens[name], ps)) for ps in pss]
        for name, pss in best.items()
    }
    group_forecasts: list[VaccineGroupForecast] = []
    for group in groups:
        dates = [r.date for a in group.antigens for r in records.get(a, [])]
        last_dose = max(dates) if dates else None
        members = [f for a in group.antigens for f in antigen_forecasts.get(a, [])]
        if not members:
            continue
        single = len(group.antigens) == 1
        full = group.administer_full_vaccine_group
        if single or _equivalent_paths(data, best, group.antigens):
            types = "+".join(sorted({m.series_type for m in members}))
            group_forecasts.append(_group_forecast(group.name, full, single, types, members, last_dose))
            continue
        by_type: dict[str, list[AntigenForecast]] = defaultdict(list)
        for member in members:
            by_type[member.series_type].append(member)
        for series_type, same_type in by_type.items():
            group_forecasts.append(_group_forecast(group.name, full, single, series_type, same_type, last_dose))
    return Assessment(
        assessment_date=on,
        vaccine_groups=tuple(group_forecasts),
        antigens=tuple(f for fs in antigen_forecasts.values() for f in fs),
    )


def _normalized(dose: AdministeredDose) -> AdministeredDose:
    cvx = normalize_cvx(dose.cvx)
    if cvx == dose.cvx:
        return dose
    return AdministeredDose(
        dose.date_administered, cvx, dose.mvx, dose.lot_expiration, dose.dose_condition, dose.identifier
    )
