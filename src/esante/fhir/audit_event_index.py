"""Index rows of an AuditEvent without evaluating FHIRPath: the audit trail stores one per audited request.

Every audited request stores at least one AuditEvent, and the generic extraction (:mod:`esante.fhir.indexing`:
~22 compiled FHIRPath expressions evaluated over the event) cost about 0.12-0.2 ms of the chainer's CPU per
event, on the serving event loop. The R4 AuditEvent search parameters are plain member paths (plus one
``where(resolve() is Patient)`` filter), so this module walks them directly and hands every node it finds to the
very same row builders (``_Rows.add_*``), in the same parameter and node order: the rows are identical, only
the navigation is cheaper (tests/fhir/test_audit_event_index.py compares both over many event shapes).

It applies only when the registry's AuditEvent parameters are exactly the ones it knows (code, type and
expression); any other definition set (a custom AuditEvent parameter, another FHIR version) and any event with
contained resources (``#id`` references resolve into them) fall back to the generic extraction.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from esante.fhir.definitions import Registry
from esante.fhir.fhirpath import Node
from esante.fhir.index_rows import IndexRows
from esante.fhir.indexing import _ADDERS, SKIPPED_PARAMS, _add, _Rows
from esante.fhir.values import parse_reference

_PATIENT = "AuditEvent.agent.who.where(resolve() is Patient) | AuditEvent.entity.what.where(resolve() is Patient)"

# code → (parameter type, expression, member path from the event, FHIR type of the nodes found)
_KNOWN: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "_profile": ("uri", "Resource.meta.profile", ("meta", "profile"), "canonical"),
    "_security": ("token", "Resource.meta.security", ("meta", "security"), "Coding"),
    "_source": ("uri", "Resource.meta.source", ("meta", "source"), "uri"),
    "_tag": ("token", "Resource.meta.tag", ("meta", "tag"), "Coding"),
    "action": ("token", "AuditEvent.action", ("action",), "code"),
    "address": ("string", "AuditEvent.agent.network.address", ("agent", "network", "address"), "string"),
    "agent": ("reference", "AuditEvent.agent.who", ("agent", "who"), "Reference"),
    "agent-name": ("string", "AuditEvent.agent.name", ("agent", "name"), "string"),
    "agent-role": ("token", "AuditEvent.agent.role", ("agent", "role"), "CodeableConcept"),
    "altid": ("token", "AuditEvent.agent.altId", ("agent", "altId"), "string"),
    "date": ("date", "AuditEvent.recorded", ("recorded",), "instant"),
    "entity": ("reference", "AuditEvent.entity.what", ("entity", "what"), "Reference"),
    "entity-name": ("string", "AuditEvent.entity.name", ("entity", "name"), "string"),
    "entity-role": ("token", "AuditEvent.entity.role", ("entity", "role"), "Coding"),
    "entity-type": ("token", "AuditEvent.entity.type", ("entity", "type"), "Coding"),
    "outcome": ("token", "AuditEvent.outcome", ("outcome",), "code"),
    "patient": ("reference", _PATIENT, (), "Reference"),  # agent.who and entity.what naming a Patient
    "policy": ("uri", "AuditEvent.agent.policy", ("agent", "policy"), "uri"),
    "site": ("token", "AuditEvent.source.site", ("source", "site"), "string"),
    "source": ("reference", "AuditEvent.source.observer", ("source", "observer"), "Reference"),
    "subtype": ("token", "AuditEvent.subtype", ("subtype",), "Coding"),
    "type": ("token", "AuditEvent.type", ("type",), "Coding"),
}

_Step = tuple[str, Callable[[_Rows, str, int, Node], None], tuple[str, ...], str]


@cache
def _plan(registry: Registry) -> tuple[_Step, ...] | None:
    """The registry's indexed AuditEvent parameters, in its order, if every one is known; else None."""
    if not registry.is_resource_type("AuditEvent"):
        return None
    plan: list[_Step] = []
    for code, sp in registry.params("AuditEvent").items():
        if code in SKIPPED_PARAMS or sp.expression is None:
            continue
        known = _KNOWN.get(code)
        if known is None or sp.type != known[0] or sp.expression != known[1] or sp.components:
            return None
        plan.append((code, _ADDERS[sp.type], known[2], known[3]))
    return tuple(plan)


def walk_members(value: Any, keys: tuple[str, ...]) -> list[Any]:
    """FHIRPath member navigation: lists flattened at every step, nulls dropped, non-objects not entered (also the
    patient compartment's fast path, compartment_paths.py)."""
    items = [value]
    for key in keys:
        found: list[Any] = []
        for item in items:
            if type(item) is not dict:
                continue
            child = item.get(key)
            if child is None:
                continue
            if type(child) is list:
                found.extend(x for x in child if x is not None)
            else:
                found.append(child)
        items = found
    return items


def _names_patient(value: Any) -> bool:
    """``where(resolve() is Patient)`` on a Reference: its reference string tells a Patient (no contained here)."""
    if type(value) is not dict:
        return False
    ref = value.get("reference")
    return isinstance(ref, str) and not ref.startswith("#") and parse_reference(ref)[0] == "Patient"


def audit_event_index_rows(event: dict[str, Any], registry: Registry) -> IndexRows | None:
    """The index rows :func:`esante.fhir.indexing.extract_index_rows` gives ``event``, or None when this fast
    path does not apply (unknown parameter definitions, contained resources): then extract generically."""
    plan = _plan(registry)
    if plan is None or "contained" in event:
        return None
    rows = _Rows()
    for code, adder, keys, node_type in plan:
        if keys:
            values = walk_members(event, keys)
        else:
            values = [v for v in walk_members(event, ("agent", "who")) if _names_patient(v)]
            values += [v for v in walk_members(event, ("entity", "what")) if _names_patient(v)]
        for value in values:
            _add(adder, rows, code, 0, Node(value, node_type, node_type), "AuditEvent")
    return rows.result()
