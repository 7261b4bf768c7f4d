"""Reading the input ``Parameters`` of the MPI's operations (POST body, or a GET query turned into valueStrings)."""

from __future__ import annotations

from typing import Any

from esante.fhir.errors import bad_request


def values(parameters: dict[str, Any], name: str) -> list[Any]:
    """The values of every parameter called ``name`` (``value[x]`` or ``resource``), in order."""
    found: list[Any] = []
    for parameter in parameters.get("parameter", []) if isinstance(parameters, dict) else []:
        if not isinstance(parameter, dict) or parameter.get("name") != name:
            continue
        if "resource" in parameter:
            found.append(parameter["resource"])
            continue
        found.extend(v for k, v in parameter.items() if k.startswith("value"))
    return found


def token(value: Any, name: str) -> tuple[str, str]:
    """A ``system|value`` token (a string, or an Identifier) → (system, value); both must be present."""
    if isinstance(value, dict):
        system, code = value.get("system"), value.get("value")
    elif isinstance(value, str) and "|" in value:
        system, _, code = value.partition("|")
    else:
        raise bad_request(f"{name} must be system|value", expression=name)
    if not isinstance(system, str) or not system or not isinstance(code, str) or not code:
        raise bad_request(f"{name} must name both the system and the value (system|value)", expression=name)
    return system, code
