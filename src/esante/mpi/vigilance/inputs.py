"""The input Parameters of the identity-vigilance operations, read strictly. Pure.

Each operation declares its parameters (name → kind, required); anything else is refused naming the problem: a
body that is not a Parameters, an unknown or repeated parameter, a value of the wrong type, a reference that is not
``Patient/<id>`` (or ``Task/<id>``), an empty reason. A decision on identities must never run on a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from esante.fhir.errors import bad_request

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
MAX_REASON = 2000


@dataclass(frozen=True)
class Spec:
    """One parameter: ``kind`` is ``Patient`` or ``Task`` (a valueReference to one) or ``string`` (valueString)."""

    name: str
    kind: str
    required: bool = False


def _reference(value: Any, name: str, res_type: str) -> str:
    reference = value.get("reference") if isinstance(value, dict) else None
    if not isinstance(reference, str) or not reference:
        raise bad_request(f"{name} must be a Reference with reference {res_type}/<id>", expression=name)
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) < 2 or parts[-2] != res_type or not _ID.match(parts[-1]):
        raise bad_request(f"{name} must reference a {res_type} ({res_type}/<id>), not {reference!r}", expression=name)
    return parts[-1]


def read(parameters: Any, specs: tuple[Spec, ...]) -> dict[str, str]:
    """name → the referenced id (references) or the text (strings), for the parameters present."""
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
        raise bad_request("the body must be a Parameters resource naming the identities of the decision")
    known = {spec.name: spec for spec in specs}
    found: dict[str, str] = {}
    entries = parameters.get("parameter", [])
    if not isinstance(entries, list):
        raise bad_request("Parameters.parameter must be a list", expression="Parameters.parameter")
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or name not in known:
            expected = ", ".join(known)
            raise bad_request(f"unknown parameter {name!r} (expected: {expected})", expression="Parameters.parameter")
        if name in found:
            raise bad_request(f"parameter {name} is given more than once", expression=name)
        spec = known[name]
        values = [key for key in entry if key.startswith("value") or key in ("resource", "part")]
        if spec.kind == "string":
            text = entry.get("valueString")
            if values != ["valueString"] or not isinstance(text, str) or not text.strip():
                raise bad_request(f"{name} must be a non-empty valueString", expression=name)
            if len(text) > MAX_REASON:
                raise bad_request(f"{name} is longer than {MAX_REASON} characters", expression=name)
            found[name] = text.strip()
        else:
            if values != ["valueReference"]:
                raise bad_request(f"{name} must be a valueReference to a {spec.kind}", expression=name)
            found[name] = _reference(entry["valueReference"], name, spec.kind)
    missing = [spec.name for spec in specs if spec.required and spec.name not in found]
    if missing:
        raise bad_request(f"missing parameter(s): {', '.join(missing)}", expression=tuple(missing))
    return found
