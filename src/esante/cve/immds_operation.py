"""``$immds-forecast`` (HL7 Immunization Decision Support Forecast IG 1.0.0, operation ImmDSForecastOperation).

    POST [base]/$immds-forecast                 Parameters in, nothing read or stored
        assessmentDate  date          0..1   (the guide: 1..1; absent → today)
        patient         Patient       1..1   birthDate (full date), gender, patient-birthPlace country
        immunization    Immunization  0..*   the history (completed ones; CVX; occurrenceDateTime)
        condition       Condition     0..*   ours: underlying conditions, mapped to CDSi observations
        observation     Observation   0..*   ours: e.g. pregnancy status, mapped likewise

    GET|POST [base]/Patient/[id]/$immds-forecast[?assessmentDate=YYYY-MM-DD]
        the stored record, read THROUGH THE POLICY as the caller: the Patient (404 if the caller may not see
        it), its Immunizations (403 if the caller may not search them), and its Conditions and Observations when
        the caller may search them (a vaccinator sees those filed in the CVE).

    out: evaluation (ImmunizationEvaluation 0..*), recommendation (ImmunizationRecommendation 1..1),
         information (OperationOutcome 0..1, ours: stored records the engine could not use)

The mapping to FHIR is immds_output.py's; the inputs read are immds_input.py's. A schedule that cannot be loaded
is a 503 naming the setting to fix.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson

from esante.cve.context import CveContext
from esante.cve.engine import assess
from esante.cve.immds_input import forecast_input
from esante.cve.immds_output import to_parameters
from esante.cve.parameters import Param, read_parameters
from esante.cve.schedule import ScheduleUnavailable
from esante.fhir.context import Outcome
from esante.fhir.errors import FhirError, Issue, bad_request
from esante.fhir.model import StoredResource
from esante.fhir.operations import OperationCall, OperationDefinition
from esante.fhir.service import FhirService
from esante.security.policy import Action

__all__ = ["forecast_operations"]

_POST_SPECS = {
    "assessmentDate": Param(("valueDate",)),
    "patient": Param(("resource",), required=True, resource_types=("Patient",)),
    "immunization": Param(("resource",), repeats=True, resource_types=("Immunization",)),
    "condition": Param(("resource",), repeats=True, resource_types=("Condition",)),
    "observation": Param(("resource",), repeats=True, resource_types=("Observation",)),
}
_INSTANCE_SPECS = {"assessmentDate": Param(("valueDate",))}
_PAGE = 500


def _assessment_date(found: dict[str, list[tuple[str, Any]]], today: date) -> date:
    if not found["assessmentDate"]:
        return today
    text = str(found["assessmentDate"][0][1])
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise bad_request(
            f"assessmentDate must be a date YYYY-MM-DD, got {text!r}", expression="assessmentDate"
        ) from None


async def _schedule(context: CveContext) -> Any:
    try:
        return await context.schedule.aget()
    except ScheduleUnavailable as exc:
        raise FhirError(503, [Issue("exception", f"the vaccination schedule is unavailable: {exc}")]) from exc


async def _search_all(
    service: FhirService, call: OperationCall, res_type: str, patient_id: str
) -> tuple[list[dict[str, Any]], list[StoredResource]]:
    """Every resource of ``res_type`` of the patient the caller may see (the service's search: the policy
    filters in SQL), page by page."""
    contents: list[dict[str, Any]] = []
    touched: list[StoredResource] = []
    offset = 0
    while True:
        query = [("patient", patient_id), ("_count", str(_PAGE)), ("_total", "none")]
        if offset:
            query.append(("_offset", str(offset)))
        outcome = await service.search(call.session, call.ctx, res_type, query)
        page = outcome.touched or []
        for stored in page:
            if stored.content is not None:
                contents.append(orjson.loads(stored.content))
                touched.append(stored)
        body = outcome.body if isinstance(outcome.body, dict) else {}
        links = body.get("link", []) if isinstance(body, dict) else []
        if not any(isinstance(link, dict) and link.get("relation") == "next" for link in links):
            return contents, touched
        offset += len(page)


def _may_search(service: FhirService, call: OperationCall, res_type: str) -> bool:
    decision = service.policy.pdp.decide(call.ctx.caller, Action("search-type", res_type), res_type)
    return decision.allowed and not decision.count_only


def forecast_operations(service: FhirService, context: CveContext) -> list[OperationDefinition]:
    async def post(call: OperationCall) -> Outcome:
        found = read_parameters(call, _POST_SPECS)
        on = _assessment_date(found, context.today())
        data = await _schedule(context)
        fi = forecast_input(
            found["patient"][0][1],
            [value for _, value in found["immunization"]],
            data,
            conditions=[value for _, value in found["condition"]],
            observations=[value for _, value in found["observation"]],
            strict=True,
        )
        assessment = assess(data, fi.patient, on)
        return Outcome(200, to_parameters(assessment, data, fi, context.schedule.name))

    async def instance(call: OperationCall) -> Outcome:
        assert call.resource_id is not None
        found = read_parameters(call, _INSTANCE_SPECS)
        on = _assessment_date(found, context.today())
        read = await service.read(call.session, call.ctx, "Patient", call.resource_id)
        assert read.stored is not None and read.stored.content is not None
        patient = orjson.loads(read.stored.content)
        immunizations, touched = await _search_all(service, call, "Immunization", call.resource_id)
        extra: dict[str, list[dict[str, Any]]] = {"Condition": [], "Observation": []}
        for res_type in extra:
            if _may_search(service, call, res_type):
                extra[res_type], seen = await _search_all(service, call, res_type, call.resource_id)
                touched.extend(seen)
        data = await _schedule(context)
        fi = forecast_input(
            patient,
            immunizations,
            data,
            conditions=extra["Condition"],
            observations=extra["Observation"],
            strict=False,
        )
        assessment = assess(data, fi.patient, on)
        body = to_parameters(assessment, data, fi, context.schedule.name)
        return Outcome(200, body, touched=[read.stored, *touched])

    return [
        OperationDefinition(
            name="immds-forecast",
            handler=post,
            system=True,
            documentation="HL7 ImmDS forecast: Parameters (assessmentDate, patient, immunization*, condition*, "
            "observation*) → ImmunizationEvaluation* and ImmunizationRecommendation, with the CVE's schedule.",
        ),
        OperationDefinition(
            name="immds-forecast",
            handler=instance,
            instance=True,
            resource_types=frozenset({"Patient"}),
            requires="r",
            documentation="HL7 ImmDS forecast of a stored patient (assessmentDate, default today): the Patient, "
            "its Immunizations, Conditions and Observations as the caller may see them.",
        ),
    ]
