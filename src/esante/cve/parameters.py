"""Reading an operation's input ``Parameters`` (POST body, or a GET query turned into ``valueString``\\ s).

Each parameter has accepted value kinds (``valueString``, ``valueDate``, ``resource``, …) and a cardinality; an
unknown name, a wrong kind, a missing required one or one given too often is a 400 naming it. A GET's text is read
as the declared kind (``2025-01-31`` as a ``valueDate``, ``Patient/x`` as a ``valueReference``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from esante.fhir.errors import bad_request
from esante.fhir.operations import OperationCall

__all__ = ["Param", "read_parameters"]


@dataclass(frozen=True)
class Param:
    kinds: tuple[str, ...]  # e.g. ("valueDate",), ("resource",)
    required: bool = False
    repeats: bool = False
    resource_types: tuple[str, ...] = ()  # for "resource": the accepted resource types


def _from_text(name: str, value: Any, spec: Param) -> tuple[str, Any]:
    if not isinstance(value, str):
        raise bad_request(f"parameter {name} must be text", expression=name)
    for kind in ("valueDate", "valueDateTime", "valueCode", "valueString"):
        if kind in spec.kinds:
            return kind, value
    if "valueReference" in spec.kinds and "|" not in value:
        return "valueReference", {"reference": value}
    if "valueIdentifier" in spec.kinds and "|" in value:
        system, _, code = value.partition("|")
        return "valueIdentifier", {"system": system, "value": code}
    raise bad_request(f"parameter {name} cannot be given in a URL: POST a Parameters resource", expression=name)


def _checked(name: str, kind: str, value: Any, spec: Param) -> Any:
    if kind == "resource":
        if not isinstance(value, dict) or value.get("resourceType") not in spec.resource_types:
            raise bad_request(
                f"parameter {name} must be a resource of type {' or '.join(spec.resource_types)}", expression=name
            )
        return value
    if kind == "valueReference":
        if not isinstance(value, dict) or not isinstance(value.get("reference"), str):
            raise bad_request(f"parameter {name} must be a Reference with a 'reference'", expression=name)
        return value
    if kind == "valueIdentifier":
        if not (
            isinstance(value, dict) and isinstance(value.get("system"), str) and isinstance(value.get("value"), str)
        ):
            raise bad_request(f"parameter {name} must be an Identifier with a system and a value", expression=name)
        return value
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"parameter {name} must be a non-empty {kind[5:]}", expression=name)
    return value


def read_parameters(call: OperationCall, specs: Mapping[str, Param]) -> dict[str, list[tuple[str, Any]]]:
    """``{name: [(kind, value), ...]}`` of the parameters given (an absent optional one maps to an empty list)."""
    parameters = call.parameters
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
        raise bad_request(f"the body of ${call.name} must be a Parameters resource")
    entries = parameters.get("parameter", [])
    if not isinstance(entries, list):
        raise bad_request("Parameters.parameter must be a list", expression="Parameters.parameter")
    found: dict[str, list[tuple[str, Any]]] = {name: [] for name in specs}
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or name not in specs:
            known = ", ".join(specs) or "none"
            raise bad_request(
                f"unknown parameter {name!r} for ${call.name} (accepted: {known})", expression="Parameters.parameter"
            )
        assert isinstance(entry, dict)
        spec = specs[name]
        if found[name] and not spec.repeats:
            raise bad_request(f"parameter {name} is given more than once", expression=name)
        keys = [key for key in entry if key.startswith("value") or key in ("resource", "part")]
        if len(keys) != 1:
            raise bad_request(f"parameter {name} needs exactly one value", expression=name)
        kind, value = keys[0], entry[keys[0]]
        if kind == "valueString" and kind not in spec.kinds and call.method == "GET":
            kind, value = _from_text(name, value, spec)
        if kind not in spec.kinds:
            raise bad_request(f"parameter {name} must be a {' or '.join(spec.kinds)}", expression=name)
        found[name].append((kind, _checked(name, kind, value, spec)))
    for name, spec in specs.items():
        if spec.required and not found[name]:
            raise bad_request(f"parameter {name} is required by ${call.name}", expression=name)
    return found
