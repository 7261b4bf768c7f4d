"""Resource validation: IHE MHD examples pass; each kind of defect is a 400 naming the offending element."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from esante.fhir import validation
from esante.fhir.errors import FhirError
from esante.fhir.validation import validate_resource
from tests.conftest import shared_data


def _mhd_resources() -> list[Any]:
    folder = shared_data("ig-examples", "MHD")
    files = sorted(folder.glob("*.json"))
    assert len(files) > 50, f"MHD examples look incomplete in {folder}"
    params = []
    for file in files:
        data = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or "resourceType" not in data:
            continue
        params.append(pytest.param(data, id=file.stem))
        if data["resourceType"] == "Bundle":
            for number, entry in enumerate(data.get("entry", [])):
                if "resource" in entry:
                    params.append(pytest.param(entry["resource"], id=f"{file.stem}#entry{number}"))
    return params


@pytest.mark.parametrize("resource", _mhd_resources())
def test_mhd_examples_are_valid(resource: dict[str, Any]) -> None:
    before = copy.deepcopy(resource)
    validate_resource(resource)
    assert resource == before, "validation must not mutate its input"


PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "name": [{"family": "Doe", "given": ["John", "J."]}],
    "gender": "male",
    "birthDate": "1970-01-31",
    "managingOrganization": {"reference": "Organization/o1"},
}
OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"text": "BP"},
    "subject": {"reference": "Patient/p1/_history/2"},
    "component": [
        {"code": {"text": "sys"}, "valueQuantity": {"value": 120, "unit": "mmHg"}},
        {"code": {"text": "dia"}, "valueQuantity": {"value": 80.5}},
    ],
}


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    resource = copy.deepcopy(base)
    for key, value in changes.items():
        if value is _DELETE:
            resource.pop(key)
        else:
            resource[key] = value
    return resource


_DELETE = object()


def _fails(resource: Any, code: str, expression: str, *, expected_type: str | None = None) -> FhirError:
    with pytest.raises(FhirError) as info:
        validate_resource(resource, expected_type=expected_type)
    err = info.value
    assert err.status == 400
    found = [(issue.code, issue.expression) for issue in err.issues]
    assert (code, (expression,)) in found, found
    return err


def test_valid_minimal_resources_pass() -> None:
    validate_resource(PATIENT, expected_type="Patient")
    validate_resource(OBSERVATION)
    for ref in (
        "#c1",
        "urn:uuid:6e1c2a9e-0d57-4b3a-9b1e-2f6b0e8d1c3a",
        "urn:oid:1.2.3.4",
        "https://x.org/fhir/P/1",
    ):
        validate_resource(_with(PATIENT, managingOrganization={"reference": ref}))


@pytest.mark.parametrize(
    ("resource", "code", "expression"),
    [
        # unknown elements
        (_with(PATIENT, foo=1), "structure", "Patient.foo"),
        (_with(PATIENT, name=[{"family": "x", "nickname": "y"}]), "structure", "Patient.name[0].nickname"),
        (_with(PATIENT, _gender={"bogus": 1}), "structure", "Patient._gender.bogus"),
        # wrong JSON types
        (_with(PATIENT, name={"family": "x"}), "structure", "Patient.name"),
        (_with(PATIENT, name=[{"given": ["a", 3]}]), "structure", "Patient.name[0].given[1]"),
        (_with(PATIENT, active="true"), "structure", "Patient.active"),
        (_with(PATIENT, birthDate=19700131), "structure", "Patient.birthDate"),
        (_with(PATIENT, multipleBirthInteger=1.5), "structure", "Patient.multipleBirthInteger"),
        (_with(PATIENT, multipleBirthInteger=2**40), "value", "Patient.multipleBirthInteger"),
        (_with(PATIENT, identifier=[]), "structure", "Patient.identifier"),
        (_with(PATIENT, telecom=[None]), "structure", "Patient.telecom[0]"),
        # primitive formats
        (_with(PATIENT, birthDate="1970-13-01"), "value", "Patient.birthDate"),
        (_with(PATIENT, birthDate="1970-02-30"), "value", "Patient.birthDate"),
        (_with(PATIENT, deceasedDateTime="2020-01-01T10:00"), "value", "Patient.deceasedDateTime"),
        (_with(PATIENT, meta={"lastUpdated": "2020-01-01"}), "value", "Patient.meta.lastUpdated"),
        (_with(PATIENT, language=" fr"), "value", "Patient.language"),
        (_with(PATIENT, implicitRules="http://a b"), "value", "Patient.implicitRules"),
        (_with(PATIENT, name=[{"family": ""}]), "value", "Patient.name[0].family"),
        # required bindings
        (_with(PATIENT, gender="mle"), "value", "Patient.gender"),
        (_with(OBSERVATION, status="bogus"), "value", "Observation.status"),
        # required elements
        (_with(OBSERVATION, status=_DELETE), "required", "Observation.status"),
        (
            _with(OBSERVATION, component=[{"code": {"text": "a"}}, {"valueString": "x"}]),
            "required",
            "Observation.component[1].code",
        ),
        # choice: one value only
        (_with(OBSERVATION, valueString="a", valueInteger=1), "structure", "Observation.valueInteger"),
        # references
        (
            _with(PATIENT, managingOrganization={"reference": "not a reference"}),
            "value",
            "Patient.managingOrganization.reference",
        ),
        (
            _with(PATIENT, managingOrganization={"reference": "Nonsense/1"}),
            "value",
            "Patient.managingOrganization.reference",
        ),
        (
            _with(PATIENT, managingOrganization={"reference": "Organization/a_b"}),
            "value",
            "Patient.managingOrganization.reference",
        ),
        (_with(OBSERVATION, subject={"reference": "ftp://x/y"}), "value", "Observation.subject.reference"),
        # ids
        (_with(PATIENT, id="bad id!"), "value", "Patient.id"),
        (_with(PATIENT, id="x" * 65), "value", "Patient.id"),
        # nested resources
        (_with(PATIENT, contained=[{"resourceType": "Nope"}]), "value", "Patient.contained[0].resourceType"),
        (
            _with(PATIENT, contained=[{"resourceType": "Organization", "active": "yes"}]),
            "structure",
            "Patient.contained[0].active",
        ),
        (
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": _with(PATIENT, gender="x")}],
            },
            "value",
            "Bundle.entry[0].resource.gender",
        ),
    ],
)
def test_invalid_resources(resource: dict[str, Any], code: str, expression: str) -> None:
    _fails(resource, code, expression)


def test_all_issues_are_reported() -> None:
    err = _fails(_with(PATIENT, foo=1, birthDate="x", gender="mle"), "structure", "Patient.foo")
    expressions = {issue.expression[0] for issue in err.issues}
    assert {"Patient.foo", "Patient.birthDate", "Patient.gender"} <= expressions
    assert all(issue.diagnostics for issue in err.issues)


@pytest.mark.parametrize("body", [[], "Patient", 3, None])
def test_non_object_body(body: Any) -> None:
    with pytest.raises(FhirError) as info:
        validate_resource(body)
    assert info.value.status == 400
    assert info.value.issues[0].code == "structure"


def test_resource_type_errors() -> None:
    _fails({"id": "x"}, "required", "resourceType")
    _fails({"resourceType": "Unicorn"}, "value", "resourceType")
    _fails({"resourceType": "Citation"}, "value", "resourceType")  # R4B-only, not R4
    _fails(PATIENT, "invalid", "Patient.resourceType", expected_type="Observation")


def test_r4_only_types_use_r4_definitions() -> None:
    product = {
        "resourceType": "MedicinalProduct",
        "name": [{"productName": "X"}],
        "identifier": [{"value": "1"}],
    }
    validate_resource(product)
    _fails(_with(product, name=[{"namePart": [{"part": 1}]}]), "required", "MedicinalProduct.name[0].productName")
    _fails(_with(product, bogus=1), "structure", "MedicinalProduct.bogus")
    _fails(_with(product, identifier={"value": "1"}), "structure", "MedicinalProduct.identifier")


def test_conditional_references_only_when_allowed() -> None:
    resource = _with(PATIENT, managingOrganization={"reference": "Organization?identifier=x|1"})
    _fails(resource, "value", "Patient.managingOrganization.reference")
    validate_resource(resource, conditional_references=True)


@pytest.fixture(autouse=True, params=[False, True], ids=["walker", "walker+pydantic"])
def _safety_net(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every case runs with the write path's walker alone and with the pydantic safety net added."""
    monkeypatch.setattr(validation, "SAFETY_NET", request.param)


@pytest.mark.parametrize(
    ("resource_type", "element", "code", "extra"),
    [
        ("Task", "status", "completed", {"intent": "proposal"}),
        ("Task", "status", "cancelled", {"intent": "proposal"}),
        ("Observation", "status", "corrected", {"code": {"text": "x"}}),
        ("Observation", "status", "cancelled", {"code": {"text": "x"}}),
    ],
)
def test_abbreviated_model_code_lists_do_not_refuse_valid_codes(
    resource_type: str, element: str, code: str, extra: dict[str, Any]
) -> None:
    """The models abbreviate some required bindings' code lists with "+"; those codes are valid R4."""
    validate_resource({"resourceType": resource_type, element: code, **extra})


def test_complete_code_lists_are_still_enforced() -> None:
    with pytest.raises(FhirError, match=r"Patient\.gender"):
        validate_resource({"resourceType": "Patient", "gender": "feminine"})
