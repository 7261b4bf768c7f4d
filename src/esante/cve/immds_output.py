"""The engine's assessment → FHIR: ImmunizationEvaluation per evaluated dose and one ImmunizationRecommendation
(HL7 ImmDS 1.0.0 output parameters ``evaluation`` 0..* and ``recommendation``). Pure.

**ImmunizationEvaluation** (one per dose and antigen, in each best patient series): ``status`` completed;
``patient``; ``date`` the assessment date; ``authority`` (display: the schedule); ``targetDisease`` the antigen
(``urn:esante:cve:antigen`` + SNOMED CT where mapped); ``immunizationEvent`` the Immunization; ``doseStatus``
``valid`` / ``notvalid`` (HL7 immunization-evaluation-dose-status; CDSi's Extraneous and Sub-standard are
``notvalid``) with the exact CDSi status (``urn:esante:cve:cdsi-evaluation-status``); ``doseStatusReason`` each
CDSi reason (``urn:esante:cve:evaluation-reason``, with HL7's ``outsidesched`` for age/interval reasons and
``explot`` for an expired lot); ``series`` the CDSi series; ``doseNumberPositiveInt`` the target dose.

**ImmunizationRecommendation**: ``patient``, ``date``, ``authority``; one ``recommendation`` per vaccine-group
forecast (a group with a standard and a risk forecast gives two, ``series`` naming the type):

- ``targetDisease``: the vaccine group (``urn:esante:cve:vaccine-group``; + SNOMED CT for a one-antigen group);
- ``vaccineCode``: the recommended vaccines (CVX) — absent when nothing is to be given;
- ``forecastStatus``: the CDSi series status in the ImmDS ForecastStatus code system (complete, notComplete,
  immune, contraindicated, agedOut, notRecommended) and, when it says the same, the R4 code
  (immunization-recommendation-status): notComplete → ``overdue`` from the past-due date, ``due`` from the
  earliest date (nothing before it: "not yet due"), complete, immune, contraindicated;
- ``forecastReason``: the CDSi reasons (text); ``description``: the administrative guidance;
- ``dateCriterion``: LOINC 30981-5 earliest, 30980-7 recommended (due), 59778-1 past due (overdue),
  59777-3 latest;
- ``doseNumberPositiveInt``: the forecast dose number; ``supportingImmunization``: the doses evaluated for it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from esante.cve.engine import (
    Assessment,
    DoseEvaluation,
    EvaluationReason,
    EvaluationStatus,
    SeriesStatus,
    SupportingData,
    VaccineGroupForecast,
)
from esante.cve.immds_input import ForecastInput
from esante.cve.record.profile import CVX_SYSTEM

__all__ = [
    "ANTIGEN_SYSTEM",
    "DISEASES",
    "FORECAST_STATUS_SYSTEM",
    "LOINC",
    "VACCINE_GROUP_SYSTEM",
    "forecast_status",
    "recommendation_resource",
    "to_parameters",
]

ANTIGEN_SYSTEM = "urn:esante:cve:antigen"
VACCINE_GROUP_SYSTEM = "urn:esante:cve:vaccine-group"
CDSI_STATUS_SYSTEM = "urn:esante:cve:cdsi-evaluation-status"
REASON_SYSTEM = "urn:esante:cve:evaluation-reason"
SCHEDULE_URL = "urn:esante:cve:schedule"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
DOSE_STATUS_SYSTEM = "http://terminology.hl7.org/CodeSystem/immunization-evaluation-dose-status"
DOSE_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/immunization-evaluation-dose-status-reason"
RECOMMENDATION_STATUS_SYSTEM = "http://terminology.hl7.org/CodeSystem/immunization-recommendation-status"
FORECAST_STATUS_SYSTEM = "http://hl7.org/fhir/us/immds/CodeSystem/ForecastStatus"

# CDSi antigen → SNOMED CT disorder (the disease the antigen protects against). Written from the SNOMED CT
# International release as the author knows it (review before clinical use); antigens absent here carry the
# CDSi antigen code only.
DISEASES: dict[str, tuple[str, str]] = {
    "Diphtheria": ("397430003", "Diphtheria caused by Corynebacterium diphtheriae"),
    "Tetanus": ("76902006", "Tetanus"),
    "Pertussis": ("27836007", "Pertussis"),
    "Polio": ("398102009", "Acute poliomyelitis"),
    "Hib": ("709410003", "Haemophilus influenzae type b infection"),
    "HepB": ("66071002", "Viral hepatitis type B"),
    "HepA": ("40468003", "Viral hepatitis, type A"),
    "Measles": ("14189004", "Measles"),
    "Mumps": ("36989005", "Mumps"),
    "Rubella": ("36653000", "Rubella"),
    "Varicella": ("38907003", "Varicella"),
    "Zoster": ("4740000", "Herpes zoster"),
    "Pneumococcal": ("16814004", "Pneumococcal infectious disease"),
    "Meningococcal": ("23511006", "Meningococcal infectious disease"),
    "HPV": ("240532009", "Human papilloma virus infection"),
    "Influenza": ("6142004", "Influenza"),
    "Rotavirus": ("18624000", "Disease due to Rotavirus"),
    "COVID-19": ("840539006", "Disease caused by severe acute respiratory syndrome coronavirus 2"),
    "RSV": ("55735004", "Respiratory syncytial virus infection"),
    "Yellow Fever": ("16541001", "Yellow fever"),
    "Typhoid": ("4834000", "Typhoid fever"),
    "Rabies": ("14168008", "Rabies"),
    "Cholera": ("63650001", "Cholera"),
}

_OUTSIDE_SCHEDULE = frozenset(
    {
        EvaluationReason.TOO_YOUNG,
        EvaluationReason.TOO_OLD,
        EvaluationReason.TOO_SOON,
        EvaluationReason.GRACE_AGE,
        EvaluationReason.GRACE_INTERVAL,
    }
)
_FORECAST_STATUS = {
    SeriesStatus.COMPLETE: ("complete", "Complete"),
    SeriesStatus.NOT_COMPLETE: ("notComplete", "Not Complete"),
    SeriesStatus.IMMUNE: ("immune", "Immune"),
    SeriesStatus.CONTRAINDICATED: ("contraindicated", "Contraindicated"),
    SeriesStatus.AGED_OUT: ("agedOut", "Aged Out"),
    SeriesStatus.NOT_RECOMMENDED: ("notRecommended", "Not Recommended"),
}
_R4_STATUS = {
    SeriesStatus.COMPLETE: ("complete", "Complete"),
    SeriesStatus.IMMUNE: ("immune", "Immune"),
    SeriesStatus.CONTRAINDICATED: ("contraindicated", "Contraindicated"),
}
_DATES = (
    ("earliest", "30981-5", "Earliest date to give"),
    ("recommended", "30980-7", "Date vaccine due"),
    ("past_due", "59778-1", "Date when overdue for immunization"),
    ("latest", "59777-3", "Latest date to give immunization"),
)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-").replace("--", "-")


def disease_concept(antigen: str) -> dict[str, Any]:
    coding = [{"system": ANTIGEN_SYSTEM, "code": antigen, "display": antigen}]
    if antigen in DISEASES:
        code, display = DISEASES[antigen]
        coding.append({"system": SNOMED, "code": code, "display": display})
    return {"coding": coding, "text": antigen}


def group_concept(group: str, antigens: tuple[str, ...]) -> dict[str, Any]:
    coding = [{"system": VACCINE_GROUP_SYSTEM, "code": group, "display": group}]
    if len(antigens) == 1 and antigens[0] in DISEASES:
        code, display = DISEASES[antigens[0]]
        coding.append({"system": SNOMED, "code": code, "display": display})
    return {"coding": coding, "text": ", ".join(antigens) if antigens else group}


def _authority(schedule: str) -> dict[str, str]:
    return {"display": f"CDSi schedule '{schedule}'"}


def _evaluation(item: DoseEvaluation, fi: ForecastInput, on: date, schedule: str) -> dict[str, Any]:
    valid = item.status is EvaluationStatus.VALID
    evaluation: dict[str, Any] = {
        "resourceType": "ImmunizationEvaluation",
        "status": "completed",
        "patient": fi.patient_reference,
        "date": on.isoformat(),
        "authority": _authority(schedule),
        "targetDisease": disease_concept(item.antigen),
        "immunizationEvent": fi.dose_references[item.dose_index],
        "doseStatus": {
            "coding": [
                {
                    "system": DOSE_STATUS_SYSTEM,
                    "code": "valid" if valid else "notvalid",
                    "display": "Valid" if valid else "Not valid",
                },
                {"system": CDSI_STATUS_SYSTEM, "code": item.status.value, "display": item.status.value},
            ],
            "text": item.status.value,
        },
        "series": item.series,
    }
    reasons = []
    for reason in item.reasons:
        coding = [{"system": REASON_SYSTEM, "code": _slug(reason.value), "display": reason.value}]
        if reason in _OUTSIDE_SCHEDULE:
            coding.append(
                {"system": DOSE_REASON_SYSTEM, "code": "outsidesched", "display": "Administered Outside Schedule"}
            )
        elif reason is EvaluationReason.EXPIRED:
            coding.append({"system": DOSE_REASON_SYSTEM, "code": "explot", "display": "Expired Lot"})
        reasons.append({"coding": coding, "text": reason.value})
    if reasons:
        evaluation["doseStatusReason"] = reasons
    if item.target_dose is not None:
        evaluation["doseNumberPositiveInt"] = item.target_dose
    return evaluation


def forecast_status(group: VaccineGroupForecast, on: date) -> tuple[str, str | None]:
    """(ImmDS ForecastStatus code, R4 immunization-recommendation-status code or None)."""
    immds = _FORECAST_STATUS[group.status][0]
    if group.status is not SeriesStatus.NOT_COMPLETE:
        r4 = _R4_STATUS.get(group.status)
        return immds, r4[0] if r4 else None
    forecast = group.forecast
    if forecast is None:
        return immds, None
    if forecast.past_due is not None and on >= forecast.past_due:
        return immds, "overdue"
    # No earliest date (CDSi 7.5: no minimum age, interval or other bound applies) means no lower bound: due now.
    if forecast.earliest is None or on >= forecast.earliest:
        return immds, "due"
    return immds, None


def _status_concept(group: VaccineGroupForecast, on: date) -> dict[str, Any]:
    immds, r4 = forecast_status(group, on)
    coding = [{"system": FORECAST_STATUS_SYSTEM, "code": immds, "display": _FORECAST_STATUS[group.status][1]}]
    if r4 is not None:
        coding.append({"system": RECOMMENDATION_STATUS_SYSTEM, "code": r4, "display": r4.capitalize()})
    text = {"overdue": "overdue", "due": "due"}.get(r4 or "", group.status.value)
    if group.status is SeriesStatus.NOT_COMPLETE and r4 is None and group.forecast is not None:
        text = "not yet due"
    return {"coding": coding, "text": text}


def _recommendation_entry(
    group: VaccineGroupForecast, data: SupportingData, fi: ForecastInput, on: date
) -> dict[str, Any]:
    definition = data.vaccine_groups.get(group.vaccine_group)
    antigens = definition.antigens if definition is not None else tuple(sorted({a.antigen for a in group.antigens}))
    entry: dict[str, Any] = {"targetDisease": group_concept(group.vaccine_group, antigens)}
    forecast = group.forecast
    if forecast is not None and forecast.recommended_vaccines:
        entry["vaccineCode"] = [
            {"coding": [{"system": CVX_SYSTEM, "code": cvx, "display": data.cvx_descriptions.get(cvx, cvx)}]}
            for cvx in forecast.recommended_vaccines
        ]
    entry["forecastStatus"] = _status_concept(group, on)
    if group.reasons:
        entry["forecastReason"] = [{"text": reason} for reason in group.reasons]
    if forecast is not None:
        criteria = []
        for attribute, code, display in _DATES:
            value = getattr(forecast, attribute)
            if value is not None:
                criteria.append(
                    {
                        "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
                        "value": value.isoformat(),
                    }
                )
        if criteria:
            entry["dateCriterion"] = criteria
        if forecast.dose_number is not None:
            entry["doseNumberPositiveInt"] = forecast.dose_number
    if group.guidance:
        entry["description"] = " ".join(group.guidance)
    entry["series"] = group.series_type
    supporting: list[dict[str, Any]] = []
    for member in group.antigens:
        for item in member.evaluations:
            reference = fi.dose_references[item.dose_index]
            if reference not in supporting:
                supporting.append(reference)
    if supporting:
        entry["supportingImmunization"] = supporting
    return entry


def recommendation_resource(
    assessment: Assessment, data: SupportingData, fi: ForecastInput, schedule: str
) -> dict[str, Any]:
    on = assessment.assessment_date
    return {
        "resourceType": "ImmunizationRecommendation",
        "extension": [{"url": SCHEDULE_URL, "valueString": schedule}],
        "patient": fi.patient_reference,
        "date": on.isoformat(),
        "authority": _authority(schedule),
        "recommendation": [_recommendation_entry(g, data, fi, on) for g in assessment.vaccine_groups],
    }


def to_parameters(assessment: Assessment, data: SupportingData, fi: ForecastInput, schedule: str) -> dict[str, Any]:
    """The operation's output Parameters: each ``evaluation``, the ``recommendation``, and (ours) ``information``
    — an OperationOutcome naming the records the forecast had to leave out, when there were any."""
    on = assessment.assessment_date
    parameters: list[dict[str, Any]] = [
        {"name": "evaluation", "resource": _evaluation(item, fi, on, schedule)}
        for antigen in assessment.antigens
        for item in antigen.evaluations
    ]
    parameters.append({"name": "recommendation", "resource": recommendation_resource(assessment, data, fi, schedule)})
    if fi.notes:
        parameters.append(
            {
                "name": "information",
                "resource": {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "warning", "code": "incomplete", "diagnostics": note} for note in fi.notes],
                },
            }
        )
    return {"resourceType": "Parameters", "parameter": parameters}
