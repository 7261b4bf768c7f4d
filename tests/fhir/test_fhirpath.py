"""The compiled FHIRPath evaluator: unit cases and equality with fhirpathpy on every example resource."""

from __future__ import annotations

import json
import re
from typing import Any

import fhirpathpy
import pytest
from fhirpathpy.models import models
from ig_examples import example_resources

from esante.fhir.definitions import get_registry
from esante.fhir.fhirpath import compile_expression, compile_stats, fhirpathpy_expression

OBS: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "o1",
    "meta": {"tag": [{"system": "http://t", "code": "x"}], "profile": ["http://p/StructureDefinition/a"]},
    "contained": [{"resourceType": "Patient", "id": "p1"}],
    "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}], "text": "Systolic"},
    "subject": {"reference": "Patient/123"},
    "performer": [{"reference": "#p1"}, {"reference": "http://other/fhir/Practitioner/9"}, {"display": "x"}],
    "effectivePeriod": {"start": "2020-01-01", "end": "2020-01-02"},
    "valueQuantity": {"value": 120, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
    "component": [
        {"code": {"text": "a"}, "valueString": "s"},
        {"code": {"text": "b"}, "valueQuantity": {"value": 1.5}},
    ],
    "extension": [{"url": "http://e", "valueBoolean": True}],
}


def run(expr: str, resource: dict[str, Any] = OBS) -> list[tuple[Any, str]]:
    return [(n.value, n.type) for n in compile_expression(expr)(resource)]


def test_navigation_and_types() -> None:
    assert run("Observation.code") == [(OBS["code"], "CodeableConcept")]
    assert run("Observation.code.coding.code") == [("8480-6", "code")]
    assert run("Observation.value") == [(OBS["valueQuantity"], "Quantity")]
    assert run("Observation.effective") == [(OBS["effectivePeriod"], "Period")]
    assert run("Observation.component.value") == [("s", "string"), ({"value": 1.5}, "Quantity")]
    assert run("Observation.component.code.text") == [("a", "string"), ("b", "string")]
    assert run("Patient.name") == []  # type filter on the root
    assert run("Resource.meta.tag.code") == [("x", "code")]
    assert run("DomainResource.meta.profile") == [("http://p/StructureDefinition/a", "canonical")]


def test_type_operators() -> None:
    assert run("(Observation.value as Quantity).unit") == [("mmHg", "string")]
    assert run("Observation.value.as(Quantity).value") == [(120, "decimal")]
    assert run("Observation.value as CodeableConcept") == []
    assert run("Observation.effective.ofType(Period).start") == [("2020-01-01", "dateTime")]
    assert run("Observation.value is Quantity") == [(True, "boolean")]
    assert run("Observation.component.value.as(string)") == [("s", "string")]


def test_where_resolve_and_functions() -> None:
    assert run("Observation.subject.where(resolve() is Patient)") == [(OBS["subject"], "Reference")]
    assert run("Observation.subject.where(resolve() is Group)") == []
    assert run("Observation.performer.where(resolve() is Patient)") == [({"reference": "#p1"}, "Reference")]
    assert run("Observation.performer.where(resolve() is Practitioner).reference") == [
        ("http://other/fhir/Practitioner/9", "string")
    ]
    assert run("Observation.component.where(code.text = 'b').value.value") == [(1.5, "decimal")]
    assert run("Observation.component.where(code.text != 'b').value") == [("s", "string")]
    assert run("Observation.performer.first().reference") == [("#p1", "string")]
    assert run("Observation.performer[1].reference") == [("http://other/fhir/Practitioner/9", "string")]
    assert run("Observation.performer.exists()") == [(True, "boolean")]
    assert run("Observation.note.exists()") == [(False, "boolean")]
    assert run("Observation.extension('http://e').value") == [(True, "boolean")]
    assert run("Observation.subject.exists() and Observation.status.exists()") == [(False, "boolean")]
    assert run("Observation.subject.exists() or Observation.status.exists()") == [(True, "boolean")]
    assert run("Observation.code | Observation.subject") == [
        (OBS["code"], "CodeableConcept"),
        (OBS["subject"], "Reference"),
    ]


def test_patient_deceased_expression() -> None:
    expr = get_registry().get("Patient", "deceased").expression  # type: ignore[union-attr]
    assert expr is not None
    base = {"resourceType": "Patient", "id": "p"}
    assert run(expr, base) == [(False, "boolean")]
    assert run(expr, {**base, "deceasedBoolean": False}) == [(False, "boolean")]
    assert run(expr, {**base, "deceasedBoolean": True}) == [(True, "boolean")]
    assert run(expr, {**base, "deceasedDateTime": "2020-01-01"}) == [(True, "boolean")]


def test_backbone_content_reference_and_resources() -> None:
    questionnaire = {
        "resourceType": "Questionnaire",
        "item": [{"linkId": "1", "item": [{"linkId": "1.1", "code": [{"code": "c"}]}]}],
    }
    assert run("Questionnaire.item.item.code.code", questionnaire) == [("c", "code")]
    bundle = {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Composition", "id": "c"}}]}
    assert run("Bundle.entry[0].resource", bundle) == [(bundle["entry"][0]["resource"], "Composition")]
    assert run("Bundle.entry[0].resource.id", bundle) == [("c", "string")]  # R4: Resource.id is System.String


def test_component_relative_evaluation_with_resource_variable() -> None:
    expr = compile_expression("%resource.id | code.text")
    root = compile_expression("Observation")(OBS)[0]
    comps = compile_expression("Observation.component")(OBS)
    assert [n.value for n in expr.evaluate(comps[:1], root)] == ["o1", "a"]


def test_every_definition_compiles() -> None:
    registry = get_registry()
    expressions = set()
    for rtype in registry.resource_types:
        for sp in registry.params(rtype).values():
            if sp.expression:
                expressions.add(sp.expression)
            expressions.update(expr for _, expr in sp.components)
    compiled = [compile_expression(e) for e in sorted(expressions)]
    assert all(c.compiled for c in compiled), [c.expression for c in compiled if not c.compiled]
    assert compile_stats()["fallback"] == 0


def test_unsupported_falls_back_to_fhirpathpy() -> None:
    expr = compile_expression("Observation.component.code.text.first().upper()")
    assert not expr.compiled
    assert [(n.value, n.type) for n in expr(OBS)] == [("A", "string")]
    assert compile_stats()["fallback"] >= 1


_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


def _norm(value: Any) -> Any:
    """Normalise values for comparison (fhirpathpy returns decimals inside complex values as strings)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return str(float(value))
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return str(float(value))
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_norm(v) for v in value]
    return value


def _canon(values: list[Any]) -> list[str]:
    return sorted({json.dumps(_norm(v), sort_keys=True, default=str) for v in values})


def test_same_results_as_fhirpathpy_on_all_examples() -> None:
    registry = get_registry()
    resources = example_resources()
    assert len(resources) > 100
    compared = mismatches = 0
    details = []
    for name, resource in resources:
        rtype = resource["resourceType"]
        for code, sp in registry.params(rtype).items():
            if not sp.expression:
                continue
            ours = _canon([n.value for n in compile_expression(sp.expression)(resource)])
            try:
                reference = fhirpathpy.evaluate(
                    resource, fhirpathpy_expression(sp.expression, rtype), model=models["r4"]
                )
            except Exception as exc:
                # fhirpathpy is strict where HL7 expressions are not: "(X.component.value as Quantity)"
                # with several components raises "Expected singleton on left side of 'as'"
                assert "singleton" in str(exc), (name, code, exc)
                continue
            compared += 1
            if ours != _canon(reference):
                mismatches += 1
                details.append((name, code, ours[:2], _canon(reference)[:2]))
    assert compared > 5000
    assert mismatches == 0, details[:10]


@pytest.mark.parametrize("folder", ["MHD", "IPS", "PDQm", "BALP"])
def test_examples_folders_exist(folder: str) -> None:
    assert example_resources(folder)
