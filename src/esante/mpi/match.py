"""IHE PDQm ITI-119 Patient Demographics Match: ``POST Patient/$match``.

Input: a Parameters with ``resource`` (the Patient whose demographics are to be matched, exactly one),
``onlyCertainMatches`` (boolean) and ``count`` (positive integer), or the Patient itself as the body (ITI-119
allows it when neither option is used). Matched against the **certified identities** (the national persons) by
the matching engine (docs/mpi-matching.md).

Output: a searchset Bundle, best first, one entry per candidate at or above the review threshold, each with
``search.mode = match``, ``search.score`` (the engine's probability, 0..1) and the ``match-grade`` extension
(certain ≥ auto-link threshold, probable ≥ probable threshold, possible above review). ``onlyCertainMatches``:
only ``certain`` candidates, and none at all when more than one is certain (distinct certified identities are
distinct persons: ITI-119 case 5). ``count``: at most that many entries (default 10, at most 50: larger values
are capped, and the Bundle says so in an OperationOutcome entry).

Every returned Patient is read through the policy (a caller who may not read it does not see it), and the call is
audited like any search, one event per Patient returned. Bad input is a 400 naming the problem: no Patient, two
Patients, a resource of another type, an invalid Patient (FHIR validation), ``implicitRules``/``modifierExtension``
(excluded by the PDQm match-input profile), an unreadable trait (e.g. a birth date that is not a date), a count
that is not a positive integer, an onlyCertainMatches that is not a boolean.
"""

from __future__ import annotations

from typing import Any

import orjson

from esante.fhir.context import Outcome
from esante.fhir.errors import bad_request, not_supported
from esante.fhir.operations import OperationCall, OperationDefinition
from esante.fhir.service import FhirService
from esante.fhir.validation import validate_resource
from esante.mpi.engine import MatchingEngine
from esante.mpi.matching import CERTAIN, RecordError
from esante.mpi.parameters import values
from esante.security.policy import Action

MATCH_GRADE_URL = "http://hl7.org/fhir/StructureDefinition/match-grade"
DEFAULT_COUNT = 10
MAX_COUNT = 50


def _single(parameters: dict[str, Any], name: str) -> Any:
    found = values(parameters, name)
    if len(found) > 1:
        raise bad_request(f"{name} may be given once", expression=name)
    return found[0] if found else None


def _boolean(value: Any, name: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in ("true", "false"):  # a GET query's valueString
        return value == "true"
    raise bad_request(f"{name} must be a boolean (true or false)", expression=name)


def _count(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad_request("count must be a positive integer", expression="count")
    return value


def read_input(parameters: dict[str, Any]) -> tuple[dict[str, Any], bool, int | None]:
    """(the Patient, onlyCertainMatches, count) from the request body."""
    if parameters.get("resourceType") == "Patient":
        patient, only_certain, count = parameters, False, None
    elif parameters.get("resourceType") == "Parameters":
        resources = values(parameters, "resource")
        if len(resources) != 1:
            raise bad_request(
                "exactly one resource parameter (the Patient to match) is required", expression="resource"
            )
        patient = resources[0]
        only_certain = _boolean(_single(parameters, "onlyCertainMatches"), "onlyCertainMatches")
        count = _count(_single(parameters, "count"))
    else:
        raise bad_request("the body must be a Parameters (resource, onlyCertainMatches, count) or a Patient")
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        raise bad_request("the resource to match must be a Patient", expression="resource")
    for element in ("implicitRules", "modifierExtension"):
        if element in patient:
            raise bad_request(f"Patient.{element} is not allowed in a match input (PDQm)", expression=element)
    validate_resource(patient, expected_type="Patient")
    return patient, only_certain, count


class PatientMatch:
    def __init__(self, service: FhirService, engine: MatchingEngine) -> None:
        self.service = service
        self.engine = engine

    async def __call__(self, call: OperationCall) -> Outcome:
        if call.method != "POST":
            raise not_supported("$match is invoked with POST (the Patient is in the body)", 405)
        patient, only_certain, count = read_input(call.parameters)
        limit = min(count or DEFAULT_COUNT, MAX_COUNT)
        try:
            found = await self.engine.lookup(call.session.conn, patient, limit)  # from the review threshold up
        except RecordError as exc:
            raise bad_request(str(exc), expression="Patient") from exc
        if only_certain:
            certain = [c for c in found if c.grade == CERTAIN]
            found = certain if len(certain) == 1 else []
        # the candidates, read through the policy seam as a Patient search would (one decision, each resource
        # checked against it); by id, without the search machinery's per-transaction planning round trip
        decision = self.service.policy.decide(call.ctx, Action("search-type", "Patient"))
        loaded = [await call.session.read("Patient", c.record_id) for c in found]
        present = [s for s in loaded if s is not None and not s.deleted]
        stored = await self.service.policy.filter_visible(call.session, lambda _t: decision, present)
        by_id = {s.res_id: s for s in stored}
        entries: list[dict[str, Any]] = []
        shown = []
        for candidate in found:
            hit = by_id.get(candidate.record_id)
            if hit is None or hit.content is None:  # not visible to this caller (or gone since the look-up)
                continue
            shown.append(hit)
            entries.append(
                {
                    "fullUrl": f"{call.ctx.base_url}/Patient/{hit.res_id}",
                    "resource": _json(hit.content),
                    "search": {
                        "extension": [{"url": MATCH_GRADE_URL, "valueCode": candidate.grade}],
                        "mode": "match",
                        "score": round(candidate.probability, 6),
                    },
                }
            )
        if count is not None and count > MAX_COUNT:
            entries.append(_capped_notice())
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(shown)}
        if entries:
            bundle["entry"] = entries
        return Outcome(200, bundle, touched=shown)


def _json(content: bytes) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(content)
    return parsed


def _capped_notice() -> dict[str, Any]:
    return {
        "resource": {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "information",
                    "code": "informational",
                    "diagnostics": f"count is capped at {MAX_COUNT} candidates",
                }
            ],
        },
        "search": {"mode": "outcome"},
    }


def match_operation(service: FhirService, engine: MatchingEngine) -> OperationDefinition:
    return OperationDefinition(
        name="match",
        handler=PatientMatch(service, engine),
        type_level=True,
        resource_types=frozenset({"Patient"}),
        requires="s",
        documentation="IHE PDQm ITI-119: certified identities matching a Patient's demographics, scored and graded.",
    )
