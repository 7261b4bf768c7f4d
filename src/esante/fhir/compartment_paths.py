"""The patients whose compartment holds a resource, without evaluating FHIRPath.

Every audited interaction names the patients of the resources it touched (BALP's Patient entity), so a search
that returns twenty documents asked the generic extraction (:func:`esante.fhir.indexing.extract_params`, compiled
FHIRPath over each document's compartment parameters) twenty times on the request's path: about a tenth of a
served DocumentReference search's CPU. Every R4 patient-compartment parameter is a plain member path from the
resource, or a union of them, some filtered by ``where(resolve() is Patient)`` — a filter that only drops plain
strings here (a Reference's type is read from its ``reference`` anyway, and only Patients are kept). This module
walks those paths directly and keeps the references whose parsed type is Patient, exactly as the generic
extraction's reference rows would
(tests/fhir/test_compartment_paths.py compares both over the IG examples and shapes of every type).

It applies only when every compartment expression of the type has that form; any other definition (a custom
SearchParameter, another FHIR version) and any resource with contained resources (``#id`` references resolve into
them) fall back to the generic extraction.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from esante.fhir.audit_event_index import walk_members
from esante.fhir.definitions import Registry
from esante.fhir.indexing import _cut
from esante.fhir.values import parse_reference

_PATIENT_FILTER = ".where(resolve() is Patient)"
_MEMBER = re.compile(r"[A-Za-z]+")


@cache
def _paths(registry: Registry, res_type: str) -> tuple[tuple[bool, tuple[str, ...]], ...] | None:
    """(filtered by ``resolve() is Patient``, member path) of ``res_type``'s patient-compartment parameters, or None
    if one is not a plain path."""
    paths: list[tuple[bool, tuple[str, ...]]] = []
    codes = set(registry.patient_compartment(res_type))
    for code, sp in registry.params(res_type).items():  # the generic extraction's order
        if code not in codes:
            continue
        codes.discard(code)
        if sp.expression is None or sp.components:
            return None
        for alternative in sp.expression.split("|"):
            path = alternative.strip()
            filtered = path.endswith(_PATIENT_FILTER)
            steps = path.removesuffix(_PATIENT_FILTER).split(".")
            if steps[0] != res_type or len(steps) < 2 or not all(_MEMBER.fullmatch(s) for s in steps[1:]):
                return None
            paths.append((filtered, tuple(steps[1:])))
    return tuple(paths) if not codes else None


def compartment_patients(resource: dict[str, Any], registry: Registry) -> tuple[str, ...] | None:
    """``Patient/id`` of each patient whose compartment holds ``resource`` (first-seen order, no duplicates), or
    None when this fast path does not apply (then extract generically)."""
    res_type = resource.get("resourceType")
    if not isinstance(res_type, str) or "contained" in resource:
        return None
    paths = _paths(registry, res_type)
    if paths is None:
        return None
    found: dict[str, None] = {}
    for filtered, keys in paths:
        for node in walk_members(resource, keys):
            if type(node) is str and not filtered:  # a uri where a Reference was expected: read as the index does
                ref = node.partition("|")[0]
            elif type(node) is dict and isinstance(node.get("reference"), str):
                ref = node["reference"]
            else:
                continue
            if not ref or ref.startswith("#"):
                continue
            target_type, target_id, _version, _url = parse_reference(ref)
            if target_type == "Patient" and target_id:
                found[f"Patient/{_cut(target_id)}"] = None
    return tuple(found)
