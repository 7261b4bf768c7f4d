"""FHIR → the engine's inputs: what a forecast reads of the Patient, its Immunizations, Conditions and Observations.
Pure.

- **Patient**: ``birthDate`` (a full date is required), ``gender`` (male/female, anything else Unknown), the
  country of ``patient-birthPlace`` (immunity by birth date and country, when the schedule has such rules).
- **Immunization**: ``status`` ``completed`` only (not-done and entered-in-error are left out); the date of
  ``occurrenceDateTime``; the CVX coding of ``vaccineCode``; the MVX of ``manufacturer.identifier``;
  ``expirationDate`` (an expired lot makes the dose sub-standard); ``isSubpotent`` true → a dose condition
  (sub-standard, CDSi 6.1).
- **Condition** (clinicalStatus active, recurrence or relapse, or absent; verificationStatus neither refuted nor
  entered-in-error) and **Observation** (status final, amended, corrected or preliminary): each coding of ``code``
  (and of an Observation's ``valueCodeableConcept``) mapped to a CDSi observation through the schedule's
  observation table (SNOMED, CDCPHINVS and CVX coded values), or given directly in ``urn:esante:cve:cdsi-observation``;
  onset ``onsetDateTime`` / ``recordedDate`` / ``effective[x]``, end ``abatementDateTime`` / ``effectivePeriod.end``.

With ``strict`` (the POST operation: the caller sent these resources to be assessed), an Immunization the engine
cannot use is a 422 naming it; otherwise (a stored record) it is left out and reported in ``notes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from esante.cve.engine import AdministeredDose, Observation, Patient, SupportingData
from esante.cve.engine.model import normalize_cvx
from esante.cve.record.profile import CVX_SYSTEM, MVX_SYSTEM, codings, cvx_of, full_date
from esante.fhir.errors import FhirError, Issue

__all__ = ["CDSI_OBSERVATION_SYSTEM", "ForecastInput", "forecast_input"]

CDSI_OBSERVATION_SYSTEM = "urn:esante:cve:cdsi-observation"
BIRTH_PLACE_URL = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
# FHIR code system URI → the code system name of the CDSi supporting data's coded values
CDSI_SYSTEMS = {
    "http://snomed.info/sct": "SNOMED",
    "SNOMED": "SNOMED",
    "CDCPHINVS": "CDCPHINVS",
    "urn:oid:2.16.840.1.114222.4.5.274": "CDCPHINVS",
    CVX_SYSTEM: "CVX",
}
_ACTIVE_CLINICAL = frozenset({"active", "recurrence", "relapse"})
_REFUTED = frozenset({"refuted", "entered-in-error"})
_OBSERVATION_STATUSES = frozenset({"final", "amended", "corrected", "preliminary"})


@dataclass(frozen=True)
class ForecastInput:
    """The engine's patient, and for each of its doses the Reference the results point back to."""

    patient: Patient
    patient_reference: dict[str, Any]
    dose_references: tuple[dict[str, Any], ...]
    notes: tuple[str, ...] = field(default=())


def _reference(resource: dict[str, Any], fallback: str) -> dict[str, Any]:
    res_id = resource.get("id")
    if isinstance(res_id, str) and res_id:
        return {"reference": f"{resource.get('resourceType')}/{res_id}"}
    return {"display": fallback}


def _refused(text: str, expression: str) -> FhirError:
    return FhirError(422, [Issue("processing", text, expression=(expression,))])


def _gender(value: Any) -> str:
    return {"male": "Male", "female": "Female"}.get(str(value).lower(), "Unknown")


def _birth_country(patient: dict[str, Any]) -> str | None:
    for extension in patient.get("extension", []) or []:
        if isinstance(extension, dict) and extension.get("url") == BIRTH_PLACE_URL:
            address = extension.get("valueAddress")
            country = address.get("country") if isinstance(address, dict) else None
            if isinstance(country, str) and country.strip():
                return country.strip()
    return None


def _dose(
    immunization: dict[str, Any], position: int, data: SupportingData, strict: bool, notes: list[str]
) -> AdministeredDose | None:
    where = f"immunization[{position}]"
    if immunization.get("status", "completed") != "completed":
        return None
    occurrence = full_date(immunization.get("occurrenceDateTime"))
    cvx = cvx_of(immunization)
    problem = None
    if occurrence is None:
        problem = f"{where}: occurrenceDateTime with a full date is needed"
    elif cvx is None:
        problem = f"{where}: vaccineCode has no CVX coding ({CVX_SYSTEM})"
    elif normalize_cvx(cvx) not in data.cvx_map:
        problem = f"{where}: CVX {cvx} is not a vaccine of the schedule"
    if problem is not None:
        if strict:
            raise _refused(problem, where)
        notes.append(problem + "; the dose was left out")
        return None
    assert occurrence is not None and cvx is not None
    manufacturer = immunization.get("manufacturer")
    identifier = manufacturer.get("identifier") if isinstance(manufacturer, dict) else None
    mvx = identifier.get("value") if isinstance(identifier, dict) and identifier.get("system") == MVX_SYSTEM else None
    return AdministeredDose(
        date_administered=occurrence,
        cvx=cvx,
        mvx=mvx if isinstance(mvx, str) else None,
        lot_expiration=full_date(immunization.get("expirationDate")),
        dose_condition=immunization.get("isSubpotent") is True,
        identifier=str(position),
    )


def _cdsi_codes(concepts: list[Any], data: SupportingData) -> list[str]:
    found: list[str] = []
    for concept in concepts:
        for coding in codings(concept):
            system, code = coding.get("system"), coding.get("code")
            if not isinstance(system, str) or not isinstance(code, str):
                continue
            if system == CDSI_OBSERVATION_SYSTEM:
                mapped: str | None = code if code in data.observations else None
            else:
                name = CDSI_SYSTEMS.get(system)
                mapped = data.observation_code(name, code) if name else None
            if mapped is not None and mapped not in found:
                found.append(mapped)
    return found


def _status_code(concept: Any) -> str | None:
    for coding in codings(concept):
        if isinstance(coding.get("code"), str):
            return str(coding["code"])
    return None


def _condition_observations(condition: dict[str, Any], data: SupportingData) -> list[Observation]:
    clinical = _status_code(condition.get("clinicalStatus"))
    if clinical is not None and clinical not in _ACTIVE_CLINICAL:
        return []
    if _status_code(condition.get("verificationStatus")) in _REFUTED:
        return []
    onset = full_date(condition.get("onsetDateTime")) or full_date(condition.get("recordedDate"))
    end = full_date(condition.get("abatementDateTime"))
    return [Observation(code, onset, end) for code in _cdsi_codes([condition.get("code")], data)]


def _observation_observations(observation: dict[str, Any], data: SupportingData) -> list[Observation]:
    if observation.get("status") not in _OBSERVATION_STATUSES:
        return []
    period = observation.get("effectivePeriod") if isinstance(observation.get("effectivePeriod"), dict) else {}
    assert isinstance(period, dict)
    onset = full_date(observation.get("effectiveDateTime")) or full_date(period.get("start"))
    end = full_date(period.get("end"))
    concepts = [observation.get("code"), observation.get("valueCodeableConcept")]
    return [Observation(code, onset, end) for code in _cdsi_codes(concepts, data)]


def forecast_input(
    patient: dict[str, Any],
    immunizations: Sequence[dict[str, Any]],
    data: SupportingData,
    *,
    conditions: Sequence[dict[str, Any]] = (),
    observations: Sequence[dict[str, Any]] = (),
    strict: bool = False,
) -> ForecastInput:
    birth = full_date(patient.get("birthDate"))
    if birth is None:
        raise _refused("the patient's birthDate (a full date) is needed for a forecast", "patient.birthDate")
    notes: list[str] = []
    doses: list[AdministeredDose] = []
    references: list[dict[str, Any]] = []
    for position, immunization in enumerate(immunizations):
        dose = _dose(immunization, position, data, strict, notes)
        if dose is not None:
            doses.append(dose)
            references.append(_reference(immunization, f"immunization[{position}]"))
    found: list[Observation] = []
    for condition in conditions:
        found.extend(_condition_observations(condition, data))
    for observation in observations:
        found.extend(_observation_observations(observation, data))
    engine_patient = Patient(
        birth_date=birth,
        gender=_gender(patient.get("gender")),
        doses=tuple(doses),
        observations=tuple(found),
        country_of_birth=_birth_country(patient),
    )
    return ForecastInput(engine_patient, _reference(patient, "patient"), tuple(references), tuple(notes))
