"""Conformance harness: run the CDC CDSi test cases (CSV) against the engine and count exact passes.

Both CDC layouts are read: the "healthy childhood and adult" file (``Med_History_*`` columns, ``gender``) and the
"underlying conditions" file (``Observation_Code_n``/``Observation_Date_n``, ``Series_Type_n``). A case passes
only when every populated expected field matches: each dose's evaluation status, reason and (conditions layout)
series type, the vaccine-group series status, the forecast dose number and the earliest, recommended and past-due
dates. ``-`` in an expected field means "nothing" (no forecast, no date) and is checked as such; an empty field
is not an expectation. The CSV parsing is at this edge; the comparison works on plain objects.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from esante.cve.engine import (
    AdministeredDose,
    AntigenForecast,
    Assessment,
    DoseEvaluation,
    EvaluationStatus,
    Observation,
    Patient,
    SeriesStatus,
    SupportingData,
    VaccineGroupForecast,
    assess,
)

__all__ = ["CaseResult", "ConformanceError", "TestCase", "check_case", "read_cases", "run_cases"]

MAX_DOSES = 7

#: Vaccine-group names used in the CDC files → CDSi schedule vaccine-group names.
_GROUP_ALIASES = {
    "dtap": "DTaP/Tdap/Td",
    "td": "DTaP/Tdap/Td",
    "tdap": "DTaP/Tdap/Td",
    "pol": "Polio",
    "ipol": "Polio",
    "ipv": "Polio",
    "pcv": "Pneumococcal",
    "var": "Varicella",
    "rota": "Rotavirus",
    "menb": "Meningococcal B",
    "mcv": "Meningococcal",
    "menacwy": "Meningococcal",
    "flu": "Influenza",
    "je": "Japanese Encephalitis",
    "yf": "Yellow Fever",
}


class ConformanceError(ValueError):
    """A test-case file that cannot be read (names the file, row and column)."""


@dataclass(frozen=True, slots=True)
class ExpectedDose:
    date_administered: date
    cvx: str
    mvx: str | None
    status: str
    reason: str
    series_type: str


@dataclass(frozen=True, slots=True)
class TestCase:
    case_id: str
    name: str
    birth_date: date
    gender: str
    observations: tuple[Observation, ...]
    doses: tuple[ExpectedDose, ...]
    series_status: str
    forecast_number: str
    earliest: str
    recommended: str
    past_due: str
    vaccine_group: str
    assessment_date: date

    __test__ = False  # not a pytest class


@dataclass(slots=True)
class CaseResult:
    case: TestCase
    group: str
    mismatches: list[dict[str, str]] = field(default_factory=list)
    notes: list[dict[str, str]] = field(default_factory=list)  # differences in fields that are not pass criteria
    error: str | None = None

    @property
    def passed(self) -> bool:
        return not self.mismatches and self.error is None


def _date(value: str, where: str) -> date:
    text = value.strip()
    try:
        if re.fullmatch(r"\d{1,2}/\d{1,2}/\d{4}", text):
            month, day, year = (int(p) for p in text.split("/"))
            return date(year, month, day)
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ConformanceError(f"{where}: {value!r} is not a date") from exc


def read_cases(path: str | Path) -> list[TestCase]:
    """Read a CDC test-case CSV (either layout)."""
    source = Path(path)
    try:
        handle = source.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise ConformanceError(f"{source}: cannot be read: {exc}") from exc
    with handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        required = {"CDC_Test_ID", "DOB", "Series_Status", "Vaccine_Group", "Assessment_Date"}
        if missing := required - columns:
            raise ConformanceError(f"{source}: not a CDSi test-case file (missing columns {sorted(missing)})")
        return [_case(row, f"{source}:{n + 2}") for n, row in enumerate(reader) if row.get("CDC_Test_ID")]


def _case(row: dict[str, str], where: str) -> TestCase:
    def get(name: str) -> str:
        return (row.get(name) or "").strip()

    observations = []
    for n in range(1, 4):
        code = get(f"Observation_Code_{n}")
        if code:
            when = get(f"Observation_Date_{n}")
            observations.append(Observation(code.zfill(3), _date(when, where) if when else None))
    for code in get("Med_History_Code").replace(",", ";").split(";"):
        if code.strip():
            observations.append(Observation(code.strip().zfill(3)))
    doses = []
    for n in range(1, MAX_DOSES + 1):
        when = get(f"Date_Administered_{n}")
        if not when:
            continue
        doses.append(
            ExpectedDose(
                date_administered=_date(when, f"{where} Date_Administered_{n}"),
                cvx=get(f"CVX_{n}"),
                mvx=get(f"MVX_{n}") or None,
                status=get(f"Evaluation_Status_{n}"),
                reason=get(f"Evaluation_Reason_{n}"),
                series_type=get(f"Series_Type_{n}"),
            )
        )
    return TestCase(
        case_id=get("CDC_Test_ID"),
        name=get("Test_Case_Name"),
        birth_date=_date(get("DOB"), f"{where} DOB"),
        gender=get("gender") or get("Gender") or "Unknown",
        observations=tuple(observations),
        doses=tuple(doses),
        series_status=get("Series_Status"),
        forecast_number=get("Forecast_#"),
        earliest=get("Earliest_Date"),
        recommended=get("Recommended_Date"),
        past_due=get("Past_Due_Date"),
        vaccine_group=get("Vaccine_Group"),
        assessment_date=_date(get("Assessment_Date"), f"{where} Assessment_Date"),
    )


def group_name(data: SupportingData, label: str) -> str:
    """The schedule's vaccine-group name for a CDC label (``DTAP`` → ``DTaP/Tdap/Td``)."""
    key = label.strip().lower()
    for name in data.vaccine_groups:
        if name.lower() == key:
            return name
    alias = _GROUP_ALIASES.get(key)
    if alias is None or alias not in data.vaccine_groups:
        raise ConformanceError(f"unknown vaccine group {label!r}")
    return alias


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


_STATUS_RANK = {
    SeriesStatus.NOT_COMPLETE: 0,
    SeriesStatus.COMPLETE: 1,
    SeriesStatus.IMMUNE: 2,
    SeriesStatus.CONTRAINDICATED: 3,
    SeriesStatus.NOT_RECOMMENDED: 4,
    SeriesStatus.AGED_OUT: 5,
}


def _pick_forecast(forecasts: tuple[VaccineGroupForecast, ...]) -> VaccineGroupForecast | None:
    """The vaccine-group forecast a CDC case describes when a multiple-antigen group has one per series type
    (e.g. DTaP/Tdap/Td for a pregnant woman: the standard series and the pertussis risk series): the risk forecast,
    which is why the patient's condition was recorded; then one that recommends a dose, the earliest first."""
    if not forecasts:
        return None

    def key(f: VaccineGroupForecast) -> tuple[int, int, date]:
        due = f.forecast.earliest if f.forecast and f.forecast.earliest else date.max
        return (0 if "Risk" in f.series_type else 1, _STATUS_RANK.get(f.status, 9), due)

    return min(forecasts, key=key)


_SEVERITY = (EvaluationStatus.NOT_VALID, EvaluationStatus.SUB_STANDARD, EvaluationStatus.VALID)


def _worst(evaluations: list[tuple[AntigenForecast, DoseEvaluation]]) -> list[tuple[AntigenForecast, DoseEvaluation]]:
    statuses = {e.status for _, e in evaluations}
    for wanted in _SEVERITY:
        if wanted in statuses:
            return [(m, e) for m, e in evaluations if e.status is wanted]
    return evaluations


def _dose_outcome(
    assessment: Assessment, forecasts: tuple[VaccineGroupForecast, ...], index: int
) -> tuple[str, list[str], str]:
    """The dose's evaluation as a case reports it, from the best series of the vaccine group's antigens.

    Per antigen, a dose valid in one of its best series counts (several best series of one antigen are
    alternative paths: the childhood and the adult pneumococcal series); across the antigens of a group, a dose not
    valid for one antigen is not valid (a DTaP dose too early for pertussis). A dose valid in both a risk and a
    standard best series is reported with the risk series' type, as the forecast is (``_pick_forecast``): the
    conditions file's ``Series_Type_n`` names the risk series then.
    """
    members = [m for f in forecasts for m in f.antigens]
    evaluations = [(m, e) for m in members for e in m.evaluations if e.dose_index == index]
    if not evaluations:
        evaluations = [(m, e) for m in assessment.antigens for e in m.evaluations if e.dose_index == index]
    if not evaluations:
        return "", [], ""
    by_antigen: dict[str, list[tuple[AntigenForecast, DoseEvaluation]]] = {}
    for member, evaluation in evaluations:
        by_antigen.setdefault(member.antigen, []).append((member, evaluation))
    per_antigen = []
    for found in by_antigen.values():
        valid = [(m, e) for m, e in found if e.status is EvaluationStatus.VALID]
        valid.sort(key=lambda pair: pair[0].series_type != "Risk")
        per_antigen.extend(valid[:1] or _worst(found)[:1])
    picked = _worst(per_antigen)
    member, evaluation = picked[0]
    return evaluation.status.value, [r.value for _, e in picked for r in e.reasons], member.series_type


def check_case(data: SupportingData, case: TestCase) -> CaseResult:
    """Run one case and compare every populated expected field."""
    group = group_name(data, case.vaccine_group)
    result = CaseResult(case, group)
    patient = Patient(
        birth_date=case.birth_date,
        gender=case.gender,
        doses=tuple(AdministeredDose(d.date_administered, d.cvx, d.mvx) for d in case.doses),
        observations=case.observations,
    )
    try:
        assessment = assess(data, patient, case.assessment_date, [group])
    except Exception as exc:  # a crash is a failure of that case, reported, not the end of the run
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    chosen = _pick_forecast(assessment.group(group))

    def expect(field_name: str, expected: str, actual: str, same: Callable[[str, str], bool] | None = None) -> None:
        if not expected:
            return
        ok = same(expected, actual) if same else _norm(expected) == _norm(actual)
        if not ok:
            result.mismatches.append({"field": field_name, "expected": expected, "actual": actual})

    for n, dose in enumerate(case.doses):
        status, reasons, series_type = _dose_outcome(assessment, assessment.group(group), n)
        expect(f"dose {n + 1} status", dose.status, status)
        if dose.reason and _norm(dose.reason) not in {_norm(r) for r in reasons}:
            result.mismatches.append(
                {"field": f"dose {n + 1} reason", "expected": dose.reason, "actual": "; ".join(reasons)}
            )
        if dose.series_type and _norm(dose.series_type) != _norm(series_type):
            result.notes.append(
                {"field": f"dose {n + 1} series type", "expected": dose.series_type, "actual": series_type}
            )
    status = chosen.status.value if chosen else ""
    expect("series status", case.series_status, status)
    forecast = chosen.forecast if chosen else None

    def shown(value: Any) -> str:
        return "-" if value is None else str(value)

    expect("forecast number", case.forecast_number, shown(forecast.dose_number if forecast else None))
    for label, expected, actual in (
        ("earliest date", case.earliest, forecast.earliest if forecast else None),
        ("recommended date", case.recommended, forecast.recommended if forecast else None),
        ("past-due date", case.past_due, forecast.past_due if forecast else None),
    ):
        if expected and expected != "-":
            expected = _date(expected, f"{case.case_id} {label}").isoformat()
        expect(label, expected, shown(actual))
    return result


def run_cases(data: SupportingData, cases: Iterable[TestCase]) -> Iterator[CaseResult]:
    for case in cases:
        yield check_case(data, case)


def report(results: list[CaseResult]) -> dict[str, Any]:
    """The JSON report: totals, per-group counts and each failure with expected vs actual."""
    groups: dict[str, dict[str, int]] = {}
    for r in results:
        counts = groups.setdefault(r.group, {"passed": 0, "failed": 0})
        counts["passed" if r.passed else "failed"] += 1
    passed = sum(1 for r in results if r.passed)
    return {
        "passed": passed,
        "failed": len(results) - passed,
        "pass_rate": passed / len(results) if results else 0.0,
        "groups": groups,
        "failures": [
            {
                "id": r.case.case_id,
                "name": r.case.name,
                "vaccine_group": r.group,
                "error": r.error,
                "mismatches": r.mismatches,
                "notes": r.notes,
            }
            for r in results
            if not r.passed
        ],
    }
