"""SMART scopes: parsing (v2 and v1 forms) and the allow/deny table."""

from __future__ import annotations

import pytest

from esante.security.scopes import ResourceScope, ScopeError, parse_scope, parse_scopes


@pytest.mark.parametrize(
    ("scope", "context", "resource_type", "interactions"),
    [
        ("patient/Observation.rs", "patient", "Observation", "rs"),
        ("user/*.cruds", "user", "*", "cruds"),
        ("system/Patient.r", "system", "Patient", "r"),
        ("patient/*.read", "patient", "*", "rs"),
        ("user/Patient.write", "user", "Patient", "cud"),
        ("system/*.*", "system", "*", "cruds"),
        ("user/Encounter.cud", "user", "Encounter", "cud"),
        ("patient/Immunization.s", "patient", "Immunization", "s"),
    ],
)
def test_resource_scopes_parse(scope: str, context: str, resource_type: str, interactions: str) -> None:
    parsed = parse_scope(scope)
    assert isinstance(parsed, ResourceScope)
    assert (parsed.context, parsed.resource_type, parsed.interactions) == (
        context,
        resource_type,
        frozenset(interactions),
    )
    assert parsed.raw == scope and parsed.query == ()


def test_granular_v2_scope_keeps_its_query() -> None:
    parsed = parse_scope(
        "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
    )
    assert isinstance(parsed, ResourceScope)
    assert parsed.query == (("category", "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"),)
    scopes = parse_scopes([parsed.raw])
    assert not scopes.allows("r", "Observation", "patient")
    assert scopes.filters("r", "Observation", "patient") == (parsed.query,)
    assert scopes.filters("c", "Observation", "patient") == ()


def test_other_scopes_are_recognised() -> None:
    scopes = parse_scopes(
        "openid fhirUser profile launch launch/patient launch/encounter offline_access online_access email"
    )
    assert scopes.openid and scopes.fhir_user and scopes.profile and scopes.launch
    assert scopes.offline_access and scopes.online_access
    assert scopes.launch_contexts == frozenset({"patient", "encounter"})
    assert scopes.other == ("email",) and scopes.resources == ()
    assert not scopes.allows("r", "Patient", "patient")


def test_duplicates_are_kept_once_and_order_kept() -> None:
    scopes = parse_scopes("openid patient/*.rs openid  patient/*.rs")
    assert scopes.raw == ("openid", "patient/*.rs") and str(scopes) == "openid patient/*.rs"
    assert parse_scopes(["openid patient/*.rs", "fhirUser"]).raw == ("openid", "patient/*.rs", "fhirUser")
    assert parse_scopes("").raw == ()


# (scope string, interaction, type, context, allowed)
TABLE = [
    ("patient/Observation.rs", "r", "Observation", "patient", True),
    ("patient/Observation.rs", "s", "Observation", "patient", True),
    ("patient/Observation.rs", "c", "Observation", "patient", False),
    ("patient/Observation.rs", "u", "Observation", "patient", False),
    ("patient/Observation.rs", "d", "Observation", "patient", False),
    ("patient/Observation.rs", "r", "Condition", "patient", False),
    ("patient/Observation.rs", "r", "Observation", "user", False),
    ("patient/Observation.rs", "r", "Observation", "system", False),
    ("user/*.cruds", "d", "DocumentReference", "user", True),
    ("user/*.cruds", "c", "Patient", "user", True),
    ("user/*.cruds", "r", "Patient", "patient", False),
    ("system/Patient.r", "r", "Patient", "system", True),
    ("system/Patient.r", "s", "Patient", "system", False),
    ("system/Patient.r", "r", "Practitioner", "system", False),
    ("patient/*.read", "r", "Immunization", "patient", True),
    ("patient/*.read", "s", "Immunization", "patient", True),
    ("patient/*.read", "u", "Immunization", "patient", False),
    ("user/Patient.write", "c", "Patient", "user", True),
    ("user/Patient.write", "u", "Patient", "user", True),
    ("user/Patient.write", "d", "Patient", "user", True),
    ("user/Patient.write", "r", "Patient", "user", False),
    ("user/Patient.write user/Patient.read", "r", "Patient", "user", True),
    ("patient/*.rs patient/Observation.cud", "u", "Observation", "patient", True),
    ("patient/*.rs patient/Observation.cud", "u", "Condition", "patient", False),
    ("launch/patient openid fhirUser", "r", "Patient", "patient", False),
    ("", "r", "Patient", "patient", False),
]


@pytest.mark.parametrize(("scope", "interaction", "resource_type", "context", "allowed"), TABLE)
def test_allows_table(scope: str, interaction: str, resource_type: str, context: str, allowed: bool) -> None:
    assert parse_scopes(scope).allows(interaction, resource_type, context) is allowed


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ("patient/Observation", "missing '.<permissions>'"),
        ("patient/Observation.", "no permissions"),
        ("patient/Observation.xyz", "neither v2 letters"),
        ("patient/Observation.rr", "order c r u d s"),
        ("patient/Observation.sr", "order c r u d s"),
        ("patient/Observation.dc", "order c r u d s"),
        ("doctor/Observation.r", "unknown context"),
        ("Patient/Observation.r", "unknown context"),
        ("patient/observation.r", "not a resource type"),
        ("patient/Obs-ervation.r", "not a resource type"),
        ("patient/.r", "not a resource type"),
        ("patient/*.read?category=x", "only allowed on v2"),
        ("patient/Observation.rs?=x", "malformed query"),
        ("patient/Observation.rs?", "malformed query"),
        ("launch/", "launch/<context>"),
        ("launch/Patient", "launch/<context>"),
        ('open"id', "OAuth scope syntax"),
        ("patient\\Observation.r", "OAuth scope syntax"),
    ],
)
def test_malformed_scopes_are_refused_with_a_reason(scope: str, message: str) -> None:
    with pytest.raises(ScopeError, match=message) as error:
        parse_scopes(f"openid {scope}")
    assert error.value.scope == scope
    assert repr(scope) in str(error.value)


def test_known_resource_types_can_be_enforced() -> None:
    assert isinstance(parse_scope("patient/Observation.r", {"Observation"}), ResourceScope)
    assert isinstance(parse_scope("patient/*.r", {"Observation"}), ResourceScope)
    with pytest.raises(ScopeError, match="unknown resource type"):
        parse_scope("patient/Unicorn.r", {"Observation"})


@pytest.mark.parametrize(
    ("interaction", "resource_type", "context"),
    [("x", "Patient", "user"), ("rs", "Patient", "user"), ("r", "Patient", "admin"), ("r", "*", "user")],
)
def test_questions_must_be_concrete(interaction: str, resource_type: str, context: str) -> None:
    with pytest.raises(ValueError):
        parse_scopes("user/*.cruds").allows(interaction, resource_type, context)
