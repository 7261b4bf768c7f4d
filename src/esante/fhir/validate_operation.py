"""``$validate`` (https://hl7.org/fhir/R4/resource-operation-validate.html): check a resource without storing it.

Registered in the operations registry at type and instance level; returns an OperationOutcome (200 when the
resource is valid, with the issues otherwise — the operation itself succeeded).
"""

from __future__ import annotations

from typing import Any

from esante.fhir.context import Outcome
from esante.fhir.errors import FhirError, bad_request
from esante.fhir.operations import OperationCall, OperationDefinition
from esante.fhir.validation import validate_resource


async def validate_handler(call: OperationCall) -> Outcome:
    resource: Any = call.parameters
    if isinstance(resource, dict) and resource.get("resourceType") == "Parameters":
        found = [p.get("resource") for p in resource.get("parameter", []) if p.get("name") == "resource"]
        if not found:
            raise bad_request("$validate needs the resource to check (body or a 'resource' parameter)")
        resource = found[0]
    try:
        validate_resource(resource, expected_type=call.resource_type)
    except FhirError as exc:
        return Outcome(200, exc.outcome())
    ok = {"severity": "information", "code": "informational", "diagnostics": "the resource is valid"}
    return Outcome(200, {"resourceType": "OperationOutcome", "issue": [ok]})


VALIDATE = OperationDefinition(
    name="validate",
    handler=validate_handler,
    type_level=True,
    instance=True,
    documentation="Validate a resource against FHIR R4 without storing it.",
)
