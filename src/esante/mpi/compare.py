"""The identity-vigilance review screen's data: two identities' traits side by side, field by field, with the
engine's agreement level and weight for each (``Task/{id}/$mpi-compare``, ``Patient/$mpi-compare``).

Pure part: :func:`side_by_side` turns two FHIR Patients into rows (field, what it compares, the trait as each
identity states it, the agreement level, the field's weight in bits) and the pair's probability and grade, with a
parameter set. I/O part: the operations read the identities through the policy (the caller must be allowed to read
both Patients; the Task form also needs the Task) and are audited like any read, one event per Patient shown.

Answer (a Parameters): per compared identity, a ``comparison`` with ``left`` and ``right`` (references),
``probability``, ``grade``, ``weight`` and one ``field`` part per trait (``name``, ``description``, ``left``,
``right``, ``agreement``, ``weight``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from esante.fhir.context import Outcome
from esante.fhir.errors import bad_request
from esante.fhir.model import StoredResource
from esante.fhir.operations import OperationCall, OperationDefinition
from esante.fhir.service import FhirService
from esante.mpi.match_parameters import ParameterStore
from esante.mpi.matching import FIELDS, IdentityRecord, ParameterSet, RecordError, record_from_fhir, score_pair
from esante.mpi.parameters import values
from esante.mpi.review import REVIEW_CODE, TASK_SYSTEM


@dataclass(frozen=True)
class FieldRow:
    name: str
    description: str
    left: str
    right: str
    agreement: str
    weight: float


@dataclass(frozen=True)
class Comparison:
    probability: float
    grade: str
    weight: float
    rows: tuple[FieldRow, ...]


def _address(record: IdentityRecord, part: str) -> str:
    address = record.address
    if address is None:
        return ""
    if part == "address":
        street = address.lines[0] if address.lines else ""
        locality = " ".join(p for p in (address.postal_code, address.city) if p)
        return ", ".join(p for p in (street, locality) if p)
    if part == "address_complement":
        return " / ".join(address.lines[1:])
    return ", ".join(p for p in (address.state, address.country) if p)


def trait_text(record: IdentityRecord, field: str) -> str:
    """A trait as the identity states it (empty when missing), in the words of the field the engine compares."""
    if field == "given":
        return " ".join(record.given)
    if field == "family":
        return record.family or ""
    if field == "birth_name":
        return record.birth_family or ""
    if field == "birth_date":
        date = record.birth_date
        if date is None:
            return ""
        return "-".join(p for p in (f"{date.year:04d}", f"{date.month:02d}" if date.month else "",
                                    f"{date.day:02d}" if date.day else "") if p)  # fmt: skip
    if field == "sex":
        return record.sex or ""
    if field == "birth_place":
        return record.birth_place or ""
    if field == "matricule":
        return record.matricule or ""
    return _address(record, field)


def side_by_side(left: dict[str, Any], right: dict[str, Any], params: ParameterSet) -> Comparison:
    """Compare two FHIR Patients (``RecordError`` names an unreadable trait)."""
    a = record_from_fhir(left, "left")
    b = record_from_fhir(right, "right")
    score = score_pair(a, b, params)
    rows = tuple(
        FieldRow(field.name, field.description, trait_text(a, field.name), trait_text(b, field.name), c.level, c.weight)
        for field, c in zip(FIELDS, score.comparisons, strict=True)
    )
    return Comparison(score.probability, score.grade, score.weight, rows)


def comparison_parameter(left_ref: str, right_ref: str, comparison: Comparison) -> dict[str, Any]:
    part: list[dict[str, Any]] = [
        {"name": "left", "valueReference": {"reference": left_ref}},
        {"name": "right", "valueReference": {"reference": right_ref}},
        {"name": "probability", "valueDecimal": round(comparison.probability, 6)},
        {"name": "grade", "valueCode": comparison.grade},
        {"name": "weight", "valueDecimal": round(comparison.weight, 2)},
    ]
    for row in comparison.rows:
        part.append(
            {
                "name": "field",
                "part": [
                    {"name": "name", "valueCode": row.name},
                    {"name": "description", "valueString": row.description},
                    *([{"name": "left", "valueString": row.left}] if row.left else []),
                    *([{"name": "right", "valueString": row.right}] if row.right else []),
                    {"name": "agreement", "valueCode": row.agreement},
                    {"name": "weight", "valueDecimal": round(row.weight, 2)},
                ],
            }
        )
    return {"name": "comparison", "part": part}


def _json(stored: StoredResource) -> dict[str, Any]:
    assert stored.content is not None
    content: dict[str, Any] = orjson.loads(stored.content)
    return content


def _patient_id(value: Any, name: str) -> str:
    reference = value.get("reference") if isinstance(value, dict) else value
    if not isinstance(reference, str) or not reference.startswith("Patient/") or "/" in reference[8:]:
        raise bad_request(f"{name} must be a reference Patient/<id>", expression=name)
    return reference.removeprefix("Patient/")


class Compare:
    def __init__(self, service: FhirService, parameters: ParameterStore) -> None:
        self.service = service
        self.parameters = parameters

    async def _read(self, call: OperationCall, res_type: str, res_id: str) -> StoredResource:
        outcome = await self.service.read(call.session, call.ctx, res_type, res_id)  # the policy decides
        assert outcome.stored is not None
        return outcome.stored

    async def __call__(self, call: OperationCall) -> Outcome:
        if call.resource_type == "Task":
            assert call.resource_id is not None
            task = _json(await self._read(call, "Task", call.resource_id))
            codes = {(c.get("system"), c.get("code")) for c in task.get("code", {}).get("coding", [])}
            if (TASK_SYSTEM, REVIEW_CODE) not in codes:
                raise bad_request("the Task is not an identity-vigilance review", expression="Task.code")
            focus = _patient_id(task.get("focus"), "Task.focus")
            others = [_patient_id(i.get("valueReference"), "Task.input") for i in task.get("input", [])]
        else:
            lefts, rights = values(call.parameters, "left"), values(call.parameters, "right")
            if len(lefts) != 1 or not rights:
                raise bad_request("one left and at least one right Patient reference are needed", expression="left")
            focus = _patient_id(lefts[0], "left")
            others = [_patient_id(r, "right") for r in rights]
        params = await self.parameters.active(call.session.conn)
        shown = [await self._read(call, "Patient", focus)]
        left = _json(shown[0])
        parameter = []
        for other in others:
            stored = await self._read(call, "Patient", other)
            shown.append(stored)
            try:
                comparison = side_by_side(left, _json(stored), params)
            except RecordError as exc:
                raise bad_request(f"Patient/{other}: {exc}") from exc
            parameter.append(comparison_parameter(f"Patient/{focus}", f"Patient/{other}", comparison))
        body = {"resourceType": "Parameters", "parameter": parameter}
        return Outcome(200, body, touched=shown)


def compare_operations(service: FhirService, parameters: ParameterStore) -> list[OperationDefinition]:
    handler = Compare(service, parameters)
    text = "two identities' traits side by side with the engine's per-field agreement (docs/mpi-vigilance.md)"
    return [
        OperationDefinition(
            name="mpi-compare",
            handler=handler,
            instance=True,
            resource_types=frozenset({"Task"}),
            requires="r",
            documentation=f"Identity-vigilance review: {text}.",
        ),
        OperationDefinition(
            name="mpi-compare",
            handler=handler,
            type_level=True,
            resource_types=frozenset({"Patient"}),
            requires="r",
            documentation=f"Compare: {text}.",
        ),
    ]
