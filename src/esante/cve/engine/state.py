"""Working state of one assessment: antigen administered records, target doses, relevant patient series.

The supporting data (model.py) is immutable and shared; these objects are created per assessment and mutated as
the evaluation (chapter 6) and forecast (chapter 7) steps proceed, exactly as the process models of chapter 4
describe ("the target dose status is 'Skipped'", "the evaluation status is 'Not Valid'"). Nothing here leaks out:
assess.py turns the final state into the frozen results of patient.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from esante.cve.engine.dates import MAX_DATE, MIN_DATE, Duration, add_duration
from esante.cve.engine.model import AgeRule, AntigenSeries, SeriesDose, in_effect
from esante.cve.engine.patient import (
    AdministeredDose,
    EvaluationReason,
    EvaluationStatus,
    Forecast,
    Patient,
    SeriesStatus,
    TargetDoseStatus,
)

__all__ = ["AntigenDose", "Context", "DoseResult", "PatientSeries", "TargetDose", "age_date", "age_rule"]


@dataclass(frozen=True, slots=True)
class AntigenDose:
    """An antigen administered record (section 4.2): one antigen of one vaccine dose administered."""

    index: int  # position in the date-sorted history (ties keep input order)
    dose: AdministeredDose
    antigen: str

    @property
    def date(self) -> date:
        return self.dose.date_administered

    @property
    def cvx(self) -> str:
        return self.dose.cvx


@dataclass(slots=True)
class TargetDose:
    series_dose: SeriesDose
    number: int  # 1-based position, recurring copies continue the count
    status: TargetDoseStatus = TargetDoseStatus.NOT_SATISFIED
    satisfied_by: AntigenDose | None = None


@dataclass(slots=True)
class DoseResult:
    """The evaluation of one antigen administered record within one patient series."""

    record: AntigenDose
    status: EvaluationStatus | None = None
    reasons: list[EvaluationReason] = field(default_factory=list)
    target_dose: int | None = None
    inadvertent: bool = False


@dataclass(slots=True)
class PatientSeries:
    """A relevant patient series (chapter 5) with its evaluated history and forecast."""

    series: AntigenSeries
    targets: list[TargetDose]
    results: list[DoseResult] = field(default_factory=list)
    current: int = 0  # index into targets of the target dose being worked on
    status: SeriesStatus | None = None
    forecast: Forecast | None = None
    forecast_reason: str | None = None
    contraindicated_vaccines: frozenset[str] = frozenset()
    done: bool = False

    @classmethod
    def start(cls, series: AntigenSeries) -> PatientSeries:
        return cls(series, [TargetDose(d, i + 1) for i, d in enumerate(series.doses)])

    @property
    def valid_count(self) -> int:
        """SELECTB-21: the number of satisfied target doses."""
        return sum(1 for t in self.targets if t.status is TargetDoseStatus.SATISFIED)

    def status_of(self, record_index: int) -> EvaluationStatus | None:
        for result in self.results:
            if result.record.index == record_index:
                return result.status
        return None


@dataclass(slots=True)
class Context:
    """What every step may read: the patient, the sorted history, the assessment date, cross-antigen statuses."""

    patient: Patient
    assessment_date: date
    history: tuple[AntigenDose, ...]  # every dose of the history once (antigen unused), sorted by date
    active_codes: frozenset[str]
    # Evaluation status of each dose (by history index) in its own antigens' best series, from a previous pass:
    # the live-virus rules (CALCDTCONFLICT-2) need the status of a dose of another antigen.
    dose_status: dict[int, EvaluationStatus] = field(default_factory=dict)

    def birth_plus(self, duration: Duration | None, default: date) -> date:
        return default if duration is None else add_duration(self.patient.birth_date, duration)


def age_rule(series_dose: SeriesDose, on: date) -> AgeRule | None:
    """The age element of a target dose in effect on ``on`` (ages can carry effective/cessation dates)."""
    for rule in series_dose.ages:
        if in_effect(rule.effective, rule.cessation, on):
            return rule
    return None


def age_date(birth: date, duration: Duration | None, default: date | None) -> date | None:
    return default if duration is None else add_duration(birth, duration)


__all__ += ["MAX_DATE", "MIN_DATE"]
