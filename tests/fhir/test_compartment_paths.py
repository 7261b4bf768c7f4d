"""The patient-compartment fast path names exactly the patients the generic FHIRPath extraction names."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from ig_examples import example_resources

from esante.fhir.compartment_paths import _paths, compartment_patients
from esante.fhir.definitions import get_registry
from esante.fhir.indexing import extract_params
from esante.security.audit import patients_of

REGISTRY = get_registry()
COMPARTMENT_TYPES = [t for t in REGISTRY.resource_types if REGISTRY.patient_compartment(t)]


def generic(resource: dict[str, Any]) -> tuple[str, ...]:
    """The compartment's patients as the audit trail found them before the fast path (FHIRPath rows)."""
    params = frozenset(REGISTRY.patient_compartment(resource["resourceType"]))
    found: dict[str, None] = {}
    for param, _grp, target_type, target_id, *_rest in extract_params(resource, params, REGISTRY).reference:
        if param in params and target_type == "Patient" and target_id:
            found[f"Patient/{target_id}"] = None
    return tuple(found)


REFERENCES: list[Any] = [
    {"reference": "Patient/p1"},
    {"reference": "Patient/p2/_history/3"},
    {"reference": "http://elsewhere.example/fhir/Patient/p3"},
    {"reference": "Practitioner/d1"},
    {"reference": "Group/g1"},
    {"reference": "urn:uuid:0c1f7a52-3c5e-4a53-9a1b-0b2a8c7a9e11"},
    {"reference": "#local"},
    {"identifier": {"system": "urn:oid:1.3.182.4.4", "value": "1980010112345"}},
    {"type": "Patient", "identifier": {"value": "x"}},
    {"reference": "Patient/p1"},  # twice: named once
    {"display": "no reference"},
    {"reference": 42},  # malformed: skipped by both
    "Patient/p9",  # not a Reference object
    None,
]


def shaped(res_type: str, references: list[Any]) -> dict[str, Any]:
    """A ``res_type`` resource with ``references`` at every patient-compartment path (lists where the path ends)."""
    resource: dict[str, Any] = {"resourceType": res_type, "id": "r1"}
    paths = _paths(REGISTRY, res_type)
    assert paths is not None, res_type
    for _filtered, keys in paths:
        node = resource
        for key in keys[:-1]:
            child = node.get(key)
            if isinstance(child, list):
                child = child[0]
            if not isinstance(child, dict):
                child = {}
                node[key] = [child]
            node = child
        node[keys[-1]] = copy.deepcopy(references)
    return resource


def test_every_r4_compartment_parameter_has_a_plain_path() -> None:
    """The fast path serves every R4 type; a definition it cannot walk would silently fall back."""
    assert COMPARTMENT_TYPES
    assert [t for t in COMPARTMENT_TYPES if _paths(REGISTRY, t) is None] == []


@pytest.mark.parametrize("res_type", COMPARTMENT_TYPES)
def test_same_patients_as_fhirpath_for_every_type(res_type: str) -> None:
    resource = shaped(res_type, REFERENCES)
    fast = compartment_patients(copy.deepcopy(resource), REGISTRY)
    assert fast == generic(resource)
    if fast:  # a path that really names patients: the test is not comparing two empty answers
        assert "Patient/p1" in fast and "Patient/p3" in fast and "Patient/d1" not in fast


def test_shapes_name_patients_for_most_types() -> None:
    """Guard against a shaping that reaches nothing: most compartment types do name p1."""
    named = [t for t in COMPARTMENT_TYPES if compartment_patients(shaped(t, REFERENCES), REGISTRY)]
    assert len(named) > len(COMPARTMENT_TYPES) * 0.9


def test_same_patients_as_fhirpath_for_the_ig_examples() -> None:
    compared = 0
    for name, resource in example_resources():
        fast = compartment_patients(copy.deepcopy(resource), REGISTRY)
        if fast is None:
            assert "contained" in resource, name
            continue
        assert fast == generic(resource), name
        compared += bool(fast)
    assert compared > 20


def test_contained_resources_fall_back_and_patients_of_still_answers() -> None:
    resource = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "contained": [{"resourceType": "Patient", "id": "c1"}],
        "subject": {"reference": "#c1"},
        "performer": [{"reference": "Patient/p5"}],
    }
    assert compartment_patients(resource, REGISTRY) is None
    assert patients_of(REGISTRY, resource) == generic(resource)


def test_a_patient_is_its_own_and_unknown_types_name_nobody() -> None:
    assert patients_of(REGISTRY, {"resourceType": "Patient", "id": "p7"}) == ("Patient/p7",)
    assert compartment_patients({"resourceType": "Organization", "id": "o1"}, REGISTRY) == ()
    assert compartment_patients({"id": "no type"}, REGISTRY) is None
