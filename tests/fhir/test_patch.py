"""PATCH conformance: HL7's JSON Patch (16) and FHIRPath Patch (33) test cases, read from ../shared/data."""

from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from esante.fhir.errors import FhirError
from esante.fhir.patch import apply_fhirpath_patch, apply_json_patch
from tests.conftest import shared_data

try:  # tests/fhir as a package (tests/fhir/__init__.py) or as a rootdir-relative folder on sys.path
    from .fhir_xml import parse_resource
except ImportError:
    from fhir_xml import parse_resource  # type: ignore[no-redef]


JSON_CASES_FILE = shared_data("fhir-test-cases", "json-patch-tests.json")
FHIR_CASES_FILE = shared_data("fhir-test-cases", "fhir-patch-tests.xml")


def _json_cases() -> list[Any]:
    cases = json.loads(JSON_CASES_FILE.read_text(encoding="utf-8"))
    assert len(cases) == 16, f"expected 16 JSON Patch cases, found {len(cases)}"
    return [pytest.param(case, id=case["comment"]) for case in cases]


def _fhir_cases() -> list[Any]:
    root = ET.parse(FHIR_CASES_FILE).getroot()
    cases = [case for case in root if isinstance(case.tag, str) and case.tag == "case"]
    assert len(cases) == 33, f"expected 33 FHIRPath Patch cases, found {len(cases)}"
    return [pytest.param(case, id=case.attrib["name"]) for case in cases]


@pytest.mark.parametrize("case", _json_cases())
def test_json_patch_hl7_cases(case: dict[str, Any]) -> None:
    original = copy.deepcopy(case["doc"])
    if "error" in case:
        with pytest.raises(FhirError) as info:
            apply_json_patch(case["doc"], case["patch"])
        assert info.value.status in (400, 422), case["error"]
    else:
        assert apply_json_patch(case["doc"], case["patch"]) == case["expected"]
    assert case["doc"] == original, "the input document must not be mutated"


def _normalise_xhtml(node: Any) -> Any:
    """Whitespace-insensitive form of narrative divs (XML serialisation differs in insignificant blanks)."""
    if isinstance(node, dict):
        return {
            k: re.sub(r">\s+<", "><", re.sub(r"\s+", " ", v)).strip()
            if k == "div" and isinstance(v, str)
            else _normalise_xhtml(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_normalise_xhtml(item) for item in node]
    return node


@pytest.mark.parametrize("case", _fhir_cases())
def test_fhirpath_patch_hl7_cases(case: ET.Element) -> None:
    resource = parse_resource(case.find("input"))  # type: ignore[arg-type]
    patch = parse_resource(case.find("diff"))  # type: ignore[arg-type]
    original = copy.deepcopy(resource)
    error = case.find("error")
    if error is not None:
        with pytest.raises(FhirError) as info:
            apply_fhirpath_patch(resource, patch)
        assert info.value.status == 422
        assert "no content found" in str(info.value).lower(), error.attrib.get("msg")
    else:
        expected = parse_resource(case.find("output"))  # type: ignore[arg-type]
        result = apply_fhirpath_patch(resource, patch)
        assert _normalise_xhtml(result) == _normalise_xhtml(expected)
    assert resource == original, "the input resource must not be mutated"


# --- malformed patches and inapplicable operations ----------------------------------------------------------


@pytest.mark.parametrize(
    "operations",
    [
        {"op": "add", "path": "/a", "value": 1},
        [{"path": "/a", "value": 1}],
        [{"op": "frobnicate", "path": "/a"}],
        [{"op": "add", "path": "a", "value": 1}],
        [{"op": "add", "value": 1}],
        [{"op": "add", "path": "/a"}],
        [{"op": "move", "path": "/a"}],
        ["not an object"],
    ],
)
def test_json_patch_malformed_is_400(operations: Any) -> None:
    with pytest.raises(FhirError) as info:
        apply_json_patch({"resourceType": "Patient"}, operations)
    assert info.value.status == 400


def test_json_patch_inapplicable_is_422_naming_pointer() -> None:
    with pytest.raises(FhirError) as info:
        apply_json_patch({"resourceType": "Patient"}, [{"op": "remove", "path": "/birthDate"}])
    assert info.value.status == 422
    assert "/birthDate" in str(info.value)
    with pytest.raises(FhirError) as info:
        apply_json_patch({"resourceType": "Patient", "active": True}, [{"op": "test", "path": "/active", "value": 1}])
    assert info.value.status == 422
    assert "/active" in str(info.value)


def test_json_patch_copy_and_root_array_dash() -> None:
    doc = {"resourceType": "Patient", "name": [{"family": "A"}]}
    result = apply_json_patch(
        doc,
        [
            {"op": "copy", "from": "/name/0", "path": "/name/-"},
            {"op": "replace", "path": "/name/1/family", "value": "B"},
        ],
    )
    assert result["name"] == [{"family": "A"}, {"family": "B"}]
    assert doc["name"] == [{"family": "A"}]


def _op(**parts: Any) -> dict[str, Any]:
    built = []
    for name, value in parts.items():
        if name == "value_part":
            built.append({"name": "value", "part": value})
        else:
            key = {
                "type": "valueCode",
                "index": "valueInteger",
                "source": "valueInteger",
                "destination": "valueInteger",
            }
            built.append({"name": name, key.get(name, "valueString"): value})
    return {"name": "operation", "part": built}


def _params(*ops: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(ops)}


PATIENT = {
    "resourceType": "Patient",
    "identifier": [
        {"use": "official", "value": "1"},
        {"use": "usual", "value": "2"},
        {"use": "usual", "value": "3"},
    ],
    "name": [{"family": "Doe", "given": ["John"]}],
    "deceasedBoolean": False,
}


def test_fhirpath_patch_where_first_last_and_choice() -> None:
    result = apply_fhirpath_patch(
        PATIENT,
        _params(
            _op(type="replace", path="Patient.identifier.where(use = 'official').value", value="X"),
            _op(type="delete", path="Patient.identifier.where(use = 'usual').last()"),
            {
                "name": "operation",
                "part": [
                    {"name": "type", "valueCode": "replace"},
                    {"name": "path", "valueString": "Patient.deceased.ofType(boolean)"},
                    {"name": "value", "valueBoolean": True},
                ],
            },
        ),
    )
    assert [i["value"] for i in result["identifier"]] == ["X", "2"]
    assert result["deceasedBoolean"] is True
    assert PATIENT["identifier"][0]["value"] == "1"


def test_fhirpath_patch_multiple_matches_is_error() -> None:
    with pytest.raises(FhirError) as info:
        apply_fhirpath_patch(PATIENT, _params(_op(type="replace", path="Patient.identifier.value", value="X")))
    assert info.value.status == 422
    with pytest.raises(FhirError) as info:
        apply_fhirpath_patch(PATIENT, _params(_op(type="delete", path="Patient.identifier.where(use = 'usual')")))
    assert info.value.status == 422


def test_fhirpath_patch_delete_nothing_is_noop_and_replace_nothing_is_error() -> None:
    assert apply_fhirpath_patch(PATIENT, _params(_op(type="delete", path="Patient.birthDate"))) == PATIENT
    with pytest.raises(FhirError) as info:
        apply_fhirpath_patch(PATIENT, _params(_op(type="replace", path="Patient.birthDate", value="2000-01-01")))
    assert info.value.status == 422
    assert info.value.issues[0].expression == ("Patient.birthDate",)


def test_fhirpath_patch_add_list_element_and_insert_index_errors() -> None:
    result = apply_fhirpath_patch(
        {"resourceType": "Patient"},
        _params(_op(type="add", path="Patient", name="name", value_part=[{"name": "family", "valueString": "Z"}])),
    )
    assert result["name"] == [{"family": "Z"}]
    with pytest.raises(FhirError) as info:
        apply_fhirpath_patch(PATIENT, _params(_op(type="insert", path="Patient.identifier", index=9, value="x")))
    assert info.value.status == 422


@pytest.mark.parametrize(
    "parameters",
    [
        {"resourceType": "Bundle"},
        _params({"name": "operation", "part": [{"name": "type", "valueCode": "explode"}]}),
        _params({"name": "operation", "part": [{"name": "type", "valueCode": "add"}]}),
        _params({"name": "nonsense"}),
        _params(_op(type="replace", path="Patient.name.substring(1)", value="x")),
    ],
)
def test_fhirpath_patch_malformed_is_400(parameters: dict[str, Any]) -> None:
    with pytest.raises(FhirError) as info:
        apply_fhirpath_patch(PATIENT, parameters)
    assert info.value.status == 400
