"""Immutable domain objects for the CDSi supporting data (schedule as data).

One :class:`SupportingData` holds everything the engine needs: antigens with their series and target doses,
vaccine groups, the CVX-to-antigen map and the live-virus conflicts. The names follow the logic specification's
vocabulary (chapter 3 and appendix A) so a reader can go from a rule ID to the field it reads. Built once by the
loader (loader.py), shared read-only by every assessment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from esante.cve.engine.dates import Duration

__all__ = [
    "AgeRule",
    "AllowableInterval",
    "AllowableVaccine",
    "Antigen",
    "AntigenContraindication",
    "AntigenSeries",
    "Condition",
    "ConditionSet",
    "ConditionalSkip",
    "ContraindicatedVaccine",
    "CvxAssociation",
    "DateOfBirthImmunity",
    "Immunity",
    "InadvertentVaccine",
    "Indication",
    "IntervalRule",
    "LiveVirusConflict",
    "ObservationDefinition",
    "PreferableVaccine",
    "SeriesDose",
    "SupportingData",
    "VaccineContraindication",
    "VaccineGroup",
    "normalize_cvx",
]


def normalize_cvx(code: str) -> str:
    """CVX codes appear as ``08`` and ``8``; compare them as numbers when they are numbers."""
    text = code.strip()
    return str(int(text)) if text.isdigit() else text


def in_effect(effective: date | None, cessation: date | None, on: date) -> bool:
    """Whether a rule with these effective/cessation dates applies on ``on`` (both bounds inclusive)."""
    return (effective is None or effective <= on) and (cessation is None or on <= cessation)


@dataclass(frozen=True, slots=True)
class AgeRule:
    abs_min_age: Duration | None
    min_age: Duration | None
    earliest_rec_age: Duration | None
    latest_rec_age: Duration | None
    max_age: Duration | None
    effective: date | None = None
    cessation: date | None = None


@dataclass(frozen=True, slots=True)
class IntervalRule:
    """A preferable interval (section 6.5); exactly one reference kind is set."""

    from_previous: bool
    from_target_dose: int | None
    from_most_recent: frozenset[str]
    from_relevant_obs: str | None
    abs_min_int: Duration | None
    min_int: Duration | None
    earliest_rec_int: Duration | None
    latest_rec_int: Duration | None
    priority: bool
    effective: date | None = None
    cessation: date | None = None


@dataclass(frozen=True, slots=True)
class AllowableInterval:
    from_previous: bool
    from_target_dose: int | None
    abs_min_int: Duration | None
    effective: date | None = None
    cessation: date | None = None


@dataclass(frozen=True, slots=True)
class PreferableVaccine:
    cvx: str
    vaccine_type: str
    begin_age: Duration | None
    end_age: Duration | None
    trade_name: str | None
    mvx: str | None
    volume: str | None
    forecast_vaccine_type: bool


@dataclass(frozen=True, slots=True)
class AllowableVaccine:
    cvx: str
    vaccine_type: str
    begin_age: Duration | None
    end_age: Duration | None


@dataclass(frozen=True, slots=True)
class InadvertentVaccine:
    cvx: str
    vaccine_type: str


@dataclass(frozen=True, slots=True)
class Condition:
    """One conditional-skip condition (tables 6-6 to 6-9)."""

    condition_id: str
    condition_type: str  # normalised lower case: age, completed series, interval, vaccine count by age/date
    start_date: date | None
    end_date: date | None
    begin_age: Duration | None
    end_age: Duration | None
    interval: Duration | None
    dose_count: int | None
    dose_type: str  # "valid" or "total"
    dose_count_logic: str  # "greater than", "equal to", "less than"
    vaccine_types: frozenset[str]
    series_groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ConditionSet:
    set_id: str
    description: str
    effective: date | None
    cessation: date | None
    condition_logic: str  # "AND" / "OR"
    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class ConditionalSkip:
    context: str  # "Evaluation", "Forecast" or "Both"
    set_logic: str  # "AND" / "OR" / "n/a" (one set)
    sets: tuple[ConditionSet, ...]


@dataclass(frozen=True, slots=True)
class SeriesDose:
    """A target dose definition of an antigen series."""

    dose_number: int
    ages: tuple[AgeRule, ...]
    intervals: tuple[IntervalRule, ...]
    allowable_intervals: tuple[AllowableInterval, ...]
    preferable_vaccines: tuple[PreferableVaccine, ...]
    allowable_vaccines: tuple[AllowableVaccine, ...]
    inadvertent_vaccines: tuple[InadvertentVaccine, ...]
    conditional_skips: tuple[ConditionalSkip, ...]
    recurring: bool
    seasonal_start: date | None
    seasonal_end: date | None


@dataclass(frozen=True, slots=True)
class Indication:
    observation_code: str | None
    observation_text: str | None
    description: str | None
    begin_age: Duration | None
    end_age: Duration | None
    guidance: str | None


@dataclass(frozen=True, slots=True)
class AntigenSeries:
    name: str
    antigen: str
    vaccine_group: str
    series_type: str  # "Standard", "Risk", "Evaluation Only"
    admin_guidance: tuple[str, ...]
    equivalent_series_groups: tuple[str, ...]
    required_genders: frozenset[str]
    default_series: bool
    product_path: bool
    series_group_name: str
    series_group: str
    series_priority: str
    series_preference: int
    min_age_to_start: Duration | None
    max_age_to_start: Duration | None
    indications: tuple[Indication, ...]
    doses: tuple[SeriesDose, ...]


@dataclass(frozen=True, slots=True)
class DateOfBirthImmunity:
    immunity_birth_date: date
    birth_country: str | None
    exclusion_codes: frozenset[str]


@dataclass(frozen=True, slots=True)
class Immunity:
    clinical_history_codes: frozenset[str]
    date_of_birth: tuple[DateOfBirthImmunity, ...]


@dataclass(frozen=True, slots=True)
class AntigenContraindication:
    observation_code: str
    title: str
    text: str
    begin_age: Duration | None
    end_age: Duration | None


@dataclass(frozen=True, slots=True)
class ContraindicatedVaccine:
    cvx: str
    vaccine_type: str
    begin_age: Duration | None
    end_age: Duration | None


@dataclass(frozen=True, slots=True)
class VaccineContraindication:
    observation_code: str
    title: str
    text: str
    vaccines: tuple[ContraindicatedVaccine, ...]


@dataclass(frozen=True, slots=True)
class Antigen:
    name: str
    immunity: Immunity
    antigen_contraindications: tuple[AntigenContraindication, ...]
    vaccine_contraindications: tuple[VaccineContraindication, ...]
    series: tuple[AntigenSeries, ...]


@dataclass(frozen=True, slots=True)
class LiveVirusConflict:
    previous_cvx: str
    previous_type: str
    current_cvx: str
    current_type: str
    begin_interval: Duration | None
    min_end_interval: Duration | None
    end_interval: Duration | None


@dataclass(frozen=True, slots=True)
class VaccineGroup:
    name: str
    administer_full_vaccine_group: bool
    antigens: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CvxAssociation:
    antigen: str
    begin_age: Duration | None
    end_age: Duration | None


@dataclass(frozen=True, slots=True)
class ObservationDefinition:
    code: str
    title: str
    coded_values: tuple[tuple[str, str], ...]  # (code system, code)


@dataclass(frozen=True, slots=True)
class SupportingData:
    """A whole schedule: every antigen's supporting data plus the schedule supporting data."""

    antigens: Mapping[str, Antigen]
    vaccine_groups: Mapping[str, VaccineGroup]
    cvx_map: Mapping[str, tuple[CvxAssociation, ...]]
    cvx_descriptions: Mapping[str, str]
    live_virus_conflicts: Mapping[str, tuple[LiveVirusConflict, ...]]  # keyed by current CVX
    observations: Mapping[str, ObservationDefinition]

    def observation_code(self, system: str, code: str) -> str | None:
        """The CDSi observation code for a coded value (e.g. SNOMED, CDCPHINVS) per the schedule's observation
        table, so that records coded in a standard terminology can be assessed; None when it maps to none."""
        wanted = (system.strip().upper(), code.strip())
        for observation in self.observations.values():
            if any((s.upper(), c) == wanted for s, c in observation.coded_values):
                return observation.code
        return None

    def vaccine_group_of(self, antigen: str) -> VaccineGroup | None:
        for group in self.vaccine_groups.values():
            if antigen in group.antigens:
                return group
        return None
