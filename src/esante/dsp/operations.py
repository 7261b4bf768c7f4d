"""What the DSP's operations share: strict reading of their input ``Parameters``, who is acting (the holder, an
assistant acting for them, a professional) and how their answers are shaped.

Every bad input is a 4xx OperationOutcome naming the parameter, before anything is read or written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from esante.dsp.access_rule import acting_professional
from esante.dsp.audit import Actor
from esante.fhir.errors import FhirError, Issue, bad_request
from esante.fhir.operations import OperationCall

PATIENT_KINDS = frozenset({"patient", "assistant"})
_VALUE_KEYS = ("valueString", "valueCode", "valueBoolean", "valueReference", "valueIdentifier", "valueDate")


@dataclass(frozen=True)
class Spec:
    """One accepted parameter: the value[x] types it may use."""

    types: tuple[str, ...]
    required: bool = False


def read_parameters(call: OperationCall, specs: Mapping[str, Spec]) -> dict[str, Any]:
    """The input parameters by name (each at most once, of an accepted type); 400 naming the first problem.

    A GET turns its query into ``valueString`` parameters: a parameter that accepts a code, a boolean or a
    reference given as a string is read from its text (``Practitioner/x``, ``true``).
    """
    parameters = call.parameters
    if parameters is None:
        parameters = {"resourceType": "Parameters", "parameter": []}
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
        raise bad_request(f"the body of ${call.name} must be a Parameters resource")
    entries = parameters.get("parameter", [])
    if not isinstance(entries, list):
        raise bad_request("Parameters.parameter must be a list", expression="Parameters.parameter")
    found: dict[str, Any] = {}
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or name not in specs:
            known = ", ".join(specs) or "none"
            raise bad_request(
                f"unknown parameter {name!r} for ${call.name} (accepted: {known})", expression="Parameters.parameter"
            )
        assert isinstance(entry, dict)
        if name in found:
            raise bad_request(f"parameter {name} is given more than once", expression=name)
        keys = [key for key in entry if key.startswith("value") or key in ("resource", "part")]
        spec = specs[name]
        if len(keys) != 1:
            raise bad_request(f"parameter {name} needs exactly one value", expression=name)
        key = keys[0]
        value = entry[key]
        if key == "valueString" and key not in spec.types and call.method == "GET":
            value, key = _from_text(name, value, spec)
        if key not in spec.types:
            raise bad_request(f"parameter {name} must be a {' or '.join(spec.types)}", expression=name)
        found[name] = _checked(name, key, value)
    for name, spec in specs.items():
        if spec.required and name not in found:
            raise bad_request(f"parameter {name} is required by ${call.name}", expression=name)
    return found


def _from_text(name: str, value: Any, spec: Spec) -> tuple[Any, str]:
    if not isinstance(value, str):
        raise bad_request(f"parameter {name} must be text", expression=name)
    if "valueBoolean" in spec.types and value in ("true", "false"):
        return value == "true", "valueBoolean"
    if "valueCode" in spec.types:
        return value, "valueCode"
    if "valueReference" in spec.types and "/" in value:
        return {"reference": value}, "valueReference"
    if "valueIdentifier" in spec.types and "|" in value:
        system, _, code = value.partition("|")
        return {"system": system, "value": code}, "valueIdentifier"
    return value, "valueString"


def _checked(name: str, key: str, value: Any) -> Any:
    if key in ("valueString", "valueCode", "valueDate"):
        if not isinstance(value, str) or not value.strip():
            raise bad_request(f"parameter {name} must be a non-empty {key[5:].lower()}", expression=name)
        return value
    if key == "valueBoolean":
        if not isinstance(value, bool):
            raise bad_request(f"parameter {name} must be true or false", expression=name)
        return value
    if key == "valueReference":
        if not isinstance(value, dict) or not isinstance(value.get("reference"), str):
            raise bad_request(f"parameter {name} must be a Reference with a 'reference'", expression=name)
        return value
    if key == "valueIdentifier":
        if not (
            isinstance(value, dict) and isinstance(value.get("system"), str) and isinstance(value.get("value"), str)
        ):
            raise bad_request(f"parameter {name} must be an Identifier with a system and a value", expression=name)
        return value
    raise bad_request(f"parameter {name}: unsupported value type {key}", expression=name)  # pragma: no cover


def forbidden(message: str, code: str | None = None) -> FhirError:
    return FhirError(403, [Issue("forbidden", message, details_code=code)])


def holder_or_assistant(call: OperationCall, patient_id: str) -> Actor:
    """The person acting for ``patient_id``: the patient themself or one of their DSP assistants (the bearer gate
    re-checks the delegation on every request); 403 for anyone else."""
    caller = call.ctx.caller
    person = caller.attributes.get("person_id")
    if caller.kind not in PATIENT_KINDS or person != patient_id:
        raise forbidden(f"${call.name} is for the holder of the DSP and their assistants only")
    account = caller.attributes.get("account_id")
    fhir_user = caller.attributes.get("fhir_user")
    reference: str | None = f"Patient/{patient_id}"
    if caller.kind != "patient":
        reference = fhir_user if isinstance(fhir_user, str) and fhir_user.startswith("Patient/") else None
    return Actor(
        caller.kind,
        reference=reference,
        account=str(account) if account else caller.subject,
        client_address=call.ctx.client_address,
        request_id=call.ctx.request_id or None,
    )


def professional_actor(call: OperationCall) -> tuple[Actor, str, tuple[str, ...]]:
    """The professional invoking a professional's operation (their own token, or a system client acting for them):
    (actor, Practitioner id, professions); 403 for anyone else or a professional unknown to the directory."""
    caller = call.ctx.caller
    professional = acting_professional(caller)
    if professional is None:
        raise forbidden(f"${call.name} is declared by a health professional")
    if not professional.practitioner:
        raise forbidden(f"${call.name}: the professional of this token is not in the provider directory (HPD)")
    account = caller.attributes.get("account_id") or caller.attributes.get("client_id") or caller.subject
    actor = Actor(
        "professional",
        reference=f"Practitioner/{professional.practitioner}",
        account=str(account) if account else None,
        client_address=call.ctx.client_address,
        request_id=call.ctx.request_id or None,
    )
    return actor, professional.practitioner, professional.professions


def parameters(*items: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(items)}
