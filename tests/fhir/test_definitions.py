"""The definitions registry (package data built by scripts/build_definitions.py)."""

from __future__ import annotations

from esante.fhir.definitions import Registry, branch_root, get_registry, narrow_expression, split_union


def test_loaded_once_and_cached() -> None:
    """Loaded once per process (its load time is a benchmark's business, not a unit test's: it failed on a busy
    machine)."""
    get_registry.cache_clear()
    registry = get_registry()
    assert get_registry() is registry


def test_resource_types() -> None:
    registry = get_registry()
    assert len(registry.resource_types) == 146 or len(registry.resource_types) >= 140
    assert list(registry.resource_types) == sorted(registry.resource_types)
    assert registry.is_resource_type("Patient")
    assert not registry.is_resource_type("Resource")
    assert not registry.is_resource_type("DomainResource")
    assert not registry.is_resource_type("HumanName")


def test_common_params_on_every_type() -> None:
    registry = get_registry()
    for rtype in registry.resource_types:
        params = registry.params(rtype)
        assert params["_id"].type == "token"
        assert params["_lastUpdated"].type == "date"
        for code in ("_tag", "_profile", "_security", "_source"):
            assert code in params, (rtype, code)
    assert registry.get("Patient", "_tag") is not None
    assert registry.get("Patient", "_tag").expression == "Resource.meta.tag"  # type: ignore[union-attr]
    assert registry.get("Patient", "_text") is not None  # DomainResource
    assert registry.get("Bundle", "_text") is None  # Bundle is not a DomainResource
    assert registry.get("Patient", "_content") is not None


def test_narrowed_expressions() -> None:
    registry = get_registry()
    code = registry.get("Observation", "code")
    assert code is not None and code.expression == "Observation.code" and code.type == "token"
    assert registry.get("Condition", "code").expression == "Condition.code"  # type: ignore[union-attr]
    ctx = registry.get("ValueSet", "context")
    assert ctx is not None and ctx.expression == "(ValueSet.useContext.value as CodeableConcept)"
    patient = registry.get("Observation", "patient")
    assert patient is not None
    assert patient.expression == "Observation.subject.where(resolve() is Patient)"
    assert patient.targets == ("Patient",)
    birth = registry.get("Person", "birthdate")
    assert birth is not None and birth.expression == "Person.birthDate"
    # every narrowed expression only mentions its own type at branch roots (a few HL7 ones are relative:
    # InsurancePlan name is "name | alias")
    for rtype in registry.resource_types:
        for sp in registry.params(rtype).values():
            if sp.expression:
                roots = {branch_root(b) for b in split_union(sp.expression)}
                typed = {r for r in roots if r[:1].isupper()}
                assert typed <= {rtype, "Resource", "DomainResource"}, (rtype, sp.code, roots)


def test_split_union_respects_parentheses_and_strings() -> None:
    expr = "(A.value as B) | A.x.where(y = 'a|b') | Resource.meta.tag"
    assert split_union(expr) == ["(A.value as B)", "A.x.where(y = 'a|b')", "Resource.meta.tag"]
    assert narrow_expression("A.x | B.y | (A.z as C)", "A") == "A.x | (A.z as C)"
    assert narrow_expression("A.x | B.y", "C") is None


def test_composites() -> None:
    registry = get_registry()
    cvq = registry.get("Observation", "code-value-quantity")
    assert cvq is not None and cvq.type == "composite"
    assert cvq.components == (("token", "code"), ("quantity", "value.as(Quantity)"))
    rel = registry.get("DocumentReference", "relationship")
    # HL7 R4 errata corrected at build time (component definitions swapped in the spec)
    assert rel is not None and rel.components == (("token", "code"), ("reference", "target"))


def test_modifiers_comparators_and_descriptions() -> None:
    registry = get_registry()
    date = registry.get("Observation", "date")
    assert date is not None and "ge" in date.comparators
    assert registry.get("Patient", "name").description  # type: ignore[union-attr]
    assert registry.get("Nope", "x") is None
    assert dict(registry.params("Nope")) == {}


def test_patient_compartment() -> None:
    registry = get_registry()
    assert set(registry.patient_compartment("Observation")) == {"subject", "performer"}
    assert "patient" in registry.patient_compartment("AllergyIntolerance")
    assert registry.patient_compartment("Patient") == ("link",)
    assert registry.patient_compartment("ValueSet") == ()
    for rtype in registry.resource_types:
        assert not any(p.startswith("{") for p in registry.patient_compartment(rtype))


def test_elements_and_summary() -> None:
    registry: Registry = get_registry()
    name = registry.element("Patient", "name")
    assert name is not None and name.types == ("HumanName",) and name.is_array and name.summary
    value = registry.element("Observation", "value[x]")
    assert value is not None and value.is_choice and "Quantity" in value.types and value.max == "1"
    assert registry.element("Observation.component", "code") is not None
    assert registry.element("Questionnaire", "item.item").ref == "item"  # type: ignore[union-attr]
    assert registry.element("HumanName", "given").types == ("string",)  # type: ignore[union-attr]
    assert registry.element("Patient", "nope") is None
    summary = registry.summary_elements("Patient")
    assert {"identifier", "name", "birthDate", "deceased", "gender"} <= summary
    assert "contact" not in summary and "photo" not in summary
    assert "value" in registry.summary_elements("Observation")
