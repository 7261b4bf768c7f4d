"""The AuditEvent fast path gives exactly the rows of the generic FHIRPath extraction."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
from ig_examples import example_resources

from esante.fhir.audit_event_index import audit_event_index_rows
from esante.fhir.definitions import get_registry
from esante.fhir.fhirpath import compile_expression
from esante.fhir.indexing import extract_index_rows, extract_with, extraction_stats
from esante.import_report import import_audit_event
from esante.security.audit import AuditRecord, Touched, build_events
from esante.security.audit_decisions import decision_events
from esante.security.pdp.decision import Decision
from esante.security.pdp.restrictions import EVERYTHING, NOTHING
from esante.security.policy import Action, Caller

REGISTRY = get_registry()


def generic(event: dict[str, Any]) -> Any:
    return extract_with(event, REGISTRY, compile_expression)


def same_rows(event: dict[str, Any]) -> None:
    """Fast and generic rows are equal, in the same order, and count the same skipped values."""
    before = extraction_stats()
    fast = audit_event_index_rows(copy.deepcopy(event), REGISTRY)
    middle = extraction_stats()
    slow = generic(copy.deepcopy(event))
    after = extraction_stats()
    assert fast is not None
    assert fast == slow
    fast_skips = {k: v - before.get(k, 0) for k, v in middle.items() if v != before.get(k, 0)}
    slow_skips = {k: v - middle.get(k, 0) for k, v in after.items() if v != middle.get(k, 0)}
    assert fast_skips == slow_skips


CALLERS = [
    Caller(),
    Caller(kind="patient", subject="Patient/p1", scopes=("patient/*.rs",), attributes={"account_id": "a1"}),
    Caller(
        kind="professional",
        subject="Practitioner/pr1",
        purpose_of_use="TREAT",
        attributes={
            "name": "Dr Émilie Müller",
            "organization": "Hôpital Kirchberg",
            "subject_role": {"system": "urn:oid:2.16.840.1.113883.6.96", "code": "309343006", "display": "Médecin"},
            "token_id": "jti-1",
            "client_id": "his-1",
        },
    ),
    Caller(
        kind="system",
        subject="system:bench-pharmacy",
        attributes={"client_id": "bench-pharmacy", "client_kind": "pharmacy", "jti": "j2", "subject_role": "PHARM"},
    ),
    Caller(kind="staff", subject="staff-7", attributes={"person_id": "1985010112345"}),
]
COVERAGE_ENTITIES = (
    {
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"},
        "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"},
        "what": {"identifier": {"system": "urn:oid:1.3.182.4.4", "value": "1990010112345"}},
    },
    {
        "type": {"system": "x", "code": "2", "display": "System Object"},
        "role": {"system": "y", "code": "4", "display": "Domain Resource"},
        "what": {"reference": "Coverage/A000000123"},
    },
)


def records() -> list[AuditRecord]:
    out = []
    cases: list[tuple[str, str, str, tuple[Touched, ...], tuple[str, ...], tuple[dict[str, Any], ...]]] = [
        ("read", "GET", "Patient/p1", (Touched("Patient/p1", ("Patient/p1",)),), ("Patient/p1",), ()),
        ("create", "POST", "Observation", (Touched("Observation/o1", ("Patient/p1",)),), (), ()),
        ("update", "PUT", "Organization/o2", (Touched("Organization/o2"),), (), ()),
        ("delete", "DELETE", "Observation/o1", (), (), ()),
        (
            "search-type",
            "GET",
            "Observation",
            (Touched("Observation/a", ("Patient/p1",)), Touched("Observation/b", ("Patient/p2",))),
            (),
            (),
        ),
        (
            "transaction",
            "POST",
            "",
            (Touched("Observation/a", ("Patient/p1", "Patient/p2")), Touched("Organization/x")),
            (),
            (),
        ),
        ("operation", "POST", "CoverageEligibilityRequest/$check", (), (), COVERAGE_ENTITIES),
        ("operation", "POST", "CoverageEligibilityRequest/$check", (Touched("Patient/p9", ("Patient/p9",)),), (), ()),
        ("capabilities", "GET", "metadata", (), (), ()),
    ]
    for i, (interaction, method, path, touched, patients, entities) in enumerate(cases):
        for j, caller in enumerate(CALLERS):
            for status in (200, 201, 403, 404, 500):
                out.append(
                    AuditRecord(
                        interaction=interaction,
                        status=status,
                        caller=caller,
                        request_id=f"req-{i}-{j}" if status != 500 else "",
                        recorded="2025-03-01T10:00:00.123456+01:00",
                        server="https://esante.example.lu/fhir",
                        method=method,
                        path=path,
                        query_string="patient=urn:oid:1.3.182.4.4|1990010112345&date=ge2024" if i % 2 else "",
                        client_address="10.0.0.5" if j % 2 else None,
                        resource_type=path.split("/")[0] or None,
                        resource_id=path.split("/")[1] if "/" in path else None,
                        touched=touched,
                        patients=patients,
                        entities=entities,
                    )
                )
    return out


def built_events() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for record in records():
        events += build_events(record)
    denied = Decision(Action("read", "Patient", "p1"), "Patient", "r", NOTHING, reason="no grant")
    notable = Decision(Action("read", "Patient", "p1"), "Patient", "r", EVERYTHING, rules=("consent-x",), notable=True)
    for record in records()[::7]:
        events += decision_events(record, [denied, notable])
    events.append(
        import_audit_event(
            job_system="urn:esante:wse-job",
            job="import-affiliations",
            command="esante wse import-affiliations",
            file_name="affiliations.csv",
            operator="root",
            server="https://esante.example.lu/fhir",
            counts={"read": 3, "created": 2, "rejected": 1},
        )
    )
    return events


def test_the_platform_events_give_the_same_rows() -> None:
    events = built_events()
    assert len(events) > 200
    for event in events:
        same_rows(event)


def test_the_ig_example_audit_events_give_the_same_rows() -> None:
    examples = [r for _name, r in example_resources() if r.get("resourceType") == "AuditEvent"]
    assert examples
    for event in examples:
        if "contained" in event:
            assert audit_event_index_rows(event, REGISTRY) is None
            continue
        same_rows(event)


ODD_VALUES: list[Any] = [
    None,
    "",
    "  Émile   ZOLA  ",
    "x" * 400,
    7,
    1.5,
    True,
    [],
    {},
    ["a", None, "b"],
    {"reference": "Patient/p1"},
    {"reference": "https://other.example/fhir/Patient/p2/_history/3"},
    {"reference": "urn:uuid:0f0e"},
    {"reference": "#p1"},
    {"reference": 12},
    {"identifier": {"system": "urn:s", "value": "v"}, "type": "Patient"},
    {"system": "urn:s", "code": "c", "display": "Dïsplay"},
    {"coding": [{"system": "urn:s", "code": 3}, None, "x"], "text": "Texte libre"},
    {"value": "1"},
    "2024-02-30",
    "2024-02-01T10:00:00Z",
    "Patient/p3",
]
PATHS = [
    ("action",),
    ("outcome",),
    ("recorded",),
    ("type",),
    ("subtype",),
    ("subtype", 0),
    ("meta", "profile"),
    ("meta", "tag"),
    ("meta", "security"),
    ("meta", "source"),
    ("source", "site"),
    ("source", "observer"),
    ("source",),
    ("agent",),
    ("agent", 0),
    ("agent", 0, "who"),
    ("agent", 1, "who"),
    ("agent", 0, "name"),
    ("agent", 0, "altId"),
    ("agent", 0, "role"),
    ("agent", 0, "policy"),
    ("agent", 0, "network"),
    ("agent", 0, "network", "address"),
    ("entity",),
    ("entity", 0, "what"),
    ("entity", 1, "what"),
    ("entity", 0, "name"),
    ("entity", 0, "role"),
    ("entity", 0, "type"),
    ("entity", 1, "type", "display"),
]


def mutate(event: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Put an odd value somewhere the parameters look (or wrap a value in a list)."""
    event = copy.deepcopy(event)
    path = rng.choice(PATHS)
    parent: Any = event
    for key in path[:-1]:
        try:
            parent = parent[key]
        except (KeyError, IndexError, TypeError):
            return event
        if not isinstance(parent, list | dict):
            return event
    last = path[-1]
    if (isinstance(parent, dict) and isinstance(last, str)) or (isinstance(parent, list) and isinstance(last, int)):
        if isinstance(parent, list) and last >= len(parent):
            return event
        current = parent.get(last) if isinstance(parent, dict) else parent[last]  # absent keys are added
        value = [current, rng.choice(ODD_VALUES)] if rng.random() < 0.2 else copy.deepcopy(rng.choice(ODD_VALUES))
        parent[last] = value
    return event


@pytest.mark.parametrize("seed", range(4))
def test_odd_shapes_give_the_same_rows(seed: int) -> None:
    rng = random.Random(seed)
    events = built_events()
    for _ in range(600):
        event = rng.choice(events)
        for _ in range(rng.randint(1, 4)):
            event = mutate(event, rng)
        same_rows(event)


def test_extract_index_rows_uses_it_for_audit_events() -> None:
    event = build_events(records()[-3])[0]
    assert extract_index_rows(event) == generic(event)
    assert extract_index_rows(event).reference  # the Coverage and the person's identifier


class _Custom:
    """A registry whose AuditEvent has one more search parameter: the fast path steps aside."""

    def __init__(self, extra: Any) -> None:
        self.extra = extra

    def is_resource_type(self, name: str) -> bool:
        return REGISTRY.is_resource_type(name)

    def params(self, resource_type: str) -> dict[str, Any]:
        return {**REGISTRY.params(resource_type), "purpose": self.extra}


def test_unknown_parameter_definitions_fall_back() -> None:
    extra = REGISTRY.params("AuditEvent")["action"]
    event = build_events(records()[0])[0]
    assert audit_event_index_rows(event, _Custom(extra)) is None
    assert audit_event_index_rows({**event, "contained": [{"resourceType": "Patient", "id": "p1"}]}, REGISTRY) is None
