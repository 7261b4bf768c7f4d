"""``Practitioner/$wse-prescriber-check``: may this professional prescribe (this), on this day?

    POST /fhir/Practitioner/$wse-prescriber-check     Parameters: identifier (Identifier: eHealthID or CNS
                                                      provider code), date (date, default today), category (code, 0..*)
    GET  /fhir/Practitioner/$wse-prescriber-check?identifier=urn:oid:1.3.182.2.8.1|<eHealthID>&date=…&category=…

From the HPD: the Practitioner holding the identifier, their right to practise *on that day* (the recorded history
of changes: ``hpd_right_to_practise_history``), the profession and specialties whose authorisation
(``qualification.period``) covers the day; then the prescribing table (``prescribing.py``). One statement reads the
Practitioner and the status on the day. Answers (Parameters): ``allowed``, ``reason`` (a code of
``urn:esante:wse:prescriber-result``), the Practitioner, the status, the profession and specialties, and one
``category`` part per category asked (or every category) with its limitation. An identifier that fails its check,
an unknown professional or a day out of range are answers; a malformed request is a 400.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson

from esante.db.engine import Connection
from esante.fhir.context import Outcome
from esante.fhir.errors import bad_request
from esante.fhir.operations import OperationCall, OperationDefinition
from esante.hpd.codes import professions
from esante.hpd.model import PROFESSION_SYSTEM
from esante.identifiers.cns_provider_code import CNS_PROVIDER_SYSTEM, CnsProviderCodeError, parse_cns_provider_code
from esante.identifiers.ehealth_id import EHEALTH_ID_SYSTEM, EHealthIdError, parse_ehealth_id
from esante.wse.callers import PRESCRIBER_OPERATION, caller_kind
from esante.wse.eligibility_model import in_window, served_day
from esante.wse.model import PRESCRIBER_RESULT_SYSTEM
from esante.wse.prescribing import CategoryRight, PrescribingTable
from esante.wse.usage import LUXEMBOURG, UsageCounter

RESULTS: dict[str, str] = {
    "may-prescribe": "The professional may prescribe on this day",
    "category-not-allowed": "The professional's profession and specialties do not allow prescribing this",
    "profession-may-not-prescribe": "The professional's profession does not prescribe",
    "no-right-to-practise": "The professional's right to practise was suspended or withdrawn on this day",
    "not-authorised-on-date": "The professional's authorisation to practise does not cover this day",
    "unknown-prescriber": "No professional of the directory holds this identifier",
    "ambiguous-prescriber": "Several professionals of the directory hold this identifier",
    "invalid-identifier": "The identifier is not valid",
    "date-out-of-range": "The date is outside the period the service answers for",
}
_PARAMETERS = ("identifier", "date", "category")
_SYSTEMS = (EHEALTH_ID_SYSTEM, CNS_PROVIDER_SYSTEM)
# the Practitioner(s) holding the identifier, with their right to practise on the day: the last change effective on
# or before it, else the status before the first change after it, else the current record, else active
LOOKUP = (
    "SELECT r.res_id, r.content, "
    "(SELECT h.new_status FROM hpd_right_to_practise_history h WHERE h.practitioner_id = r.res_id "
    "AND h.effective <= ? ORDER BY h.effective DESC, h.id DESC LIMIT 1), "
    "(SELECT h.old_status FROM hpd_right_to_practise_history h WHERE h.practitioner_id = r.res_id "
    "AND h.effective > ? ORDER BY h.effective, h.id LIMIT 1), "
    "(SELECT p.status FROM hpd_right_to_practise p WHERE p.practitioner_id = r.res_id) "
    "FROM idx_token t JOIN resource r ON r.rid = t.rid AND r.is_current AND NOT r.deleted "
    "WHERE t.res_type = 'Practitioner' AND t.param = 'identifier' AND t.system = ? AND t.code = ? LIMIT 2"
)
_DOCTOR_ROLE = {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "8", "display": "Doctor"}
_PERSON_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"}


@dataclass(frozen=True)
class PrescriberQuery:
    system: str
    value: str
    day: str
    categories: tuple[str, ...]
    invalid: str | None = None  # the check that failed


def _value_of(entry: dict[str, Any], allowed: tuple[str, ...], name: str) -> Any:
    keys = [k for k in entry if k.startswith("value") or k in ("resource", "part")]
    if len(keys) != 1 or keys[0] not in allowed:
        raise bad_request(f"{name} must be a {' or '.join(allowed)}", expression=name)
    return entry[keys[0]]


def parse_query(parameters: Any, method: str, today: date, categories: dict[str, str]) -> PrescriberQuery:
    """The request's parameters, strictly: unknown, repeated, mistyped or missing ones are 400s."""
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
        raise bad_request("the body must be a Parameters resource (identifier, date, category)")
    entries = parameters.get("parameter", [])
    if not isinstance(entries, list):
        raise bad_request("Parameters.parameter must be a list", expression="Parameters.parameter")
    identifier: tuple[str, str] | None = None
    day: str | None = None
    wanted: list[str] = []
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else None
        if name not in _PARAMETERS:
            raise bad_request(
                f"unknown parameter {name!r} (expected: {', '.join(_PARAMETERS)})", expression="parameter"
            )
        assert isinstance(entry, dict) and isinstance(name, str)
        if name == "identifier":
            if identifier is not None:
                raise bad_request("identifier is given more than once", expression="identifier")
            value = _value_of(entry, ("valueIdentifier", "valueString"), name)
            if isinstance(value, dict):
                system, text = value.get("system"), value.get("value")
            elif isinstance(value, str) and "|" in value:
                system, _, text = value.partition("|")
            else:
                system, text = None, None
            if not isinstance(system, str) or not isinstance(text, str) or not text:
                raise bad_request("identifier: a system and a value (eHealthID or CNS provider code)", expression=name)
            identifier = (system, text)
        elif name == "date":
            if day is not None:
                raise bad_request("date is given more than once", expression="date")
            day = served_day(_value_of(entry, ("valueDate", "valueString"), name), "date", today)
        else:
            code = _value_of(entry, ("valueCode", "valueString"), name)
            for item in str(code).split(",") if method == "GET" else [code]:
                if item not in categories:
                    raise bad_request(
                        f"category: {item!r} is not one of {', '.join(categories)}", expression="category"
                    )
                if item not in wanted:
                    wanted.append(item)
    if identifier is None:
        raise bad_request(
            "identifier: required (the prescriber's eHealthID or CNS provider code)", expression="identifier"
        )
    system, text = identifier
    if system not in _SYSTEMS:
        raise bad_request(
            f"identifier.system: the eHealthID ({EHEALTH_ID_SYSTEM}) or the CNS provider code ({CNS_PROVIDER_SYSTEM}), "
            f"not {system!r}",
            expression="identifier",
        )
    served = day or today.isoformat()
    try:
        value = parse_ehealth_id(text) if system == EHEALTH_ID_SYSTEM else parse_cns_provider_code(text)
    except (EHealthIdError, CnsProviderCodeError) as error:
        return PrescriberQuery(system, text[:32], served, tuple(wanted), str(error))
    return PrescriberQuery(system, value, served, tuple(wanted))


def _covers(period: Any, day: str) -> bool:
    if not isinstance(period, dict):
        return True
    start = str(period.get("start") or "")[:10]
    end = str(period.get("end") or "")[:10]
    return (not start or start <= day) and (not end or day <= end)


def qualifications_on(practitioner: dict[str, Any], day: str) -> tuple[str | None, list[str], bool]:
    """(profession, specialties) whose authorisation covers ``day``, and whether a profession is recorded at all."""
    table = professions()
    profession: str | None = None
    specialties: list[str] = []
    recorded = False
    for qualification in practitioner.get("qualification", []) or []:
        if not isinstance(qualification, dict):
            continue
        for coding in (qualification.get("code") or {}).get("coding", []) or []:
            if not isinstance(coding, dict) or coding.get("system") != PROFESSION_SYSTEM:
                continue
            concept = table.get(str(coding.get("code")))
            if concept is None:
                continue
            if concept.parent is None:
                recorded = True
            if not _covers(qualification.get("period"), day):
                continue
            if concept.parent is None:
                profession = concept.code
            else:
                specialties.append(concept.code)
    return profession, [s for s in specialties if table.get(s) and table.get(s).parent == profession], recorded  # type: ignore[union-attr]


class PrescriberCheck:
    def __init__(
        self,
        table: PrescribingTable,
        usage: UsageCounter,
        past_days: int,
        future_days: int,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.table = table
        self.usage = usage
        self.past_days = past_days
        self.future_days = future_days
        self.clock = clock or (lambda: datetime.now(LUXEMBOURG))

    def definition(self) -> OperationDefinition:
        return OperationDefinition(
            name=PRESCRIBER_OPERATION,
            handler=self.handle,
            type_level=True,
            resource_types=frozenset({"Practitioner"}),
            requires="r",
            read_only=True,
            documentation=(
                "WSE right-to-prescribe check: may the professional (eHealthID or CNS provider code) prescribe on the "
                "date (right to practise on that day, profession and specialties, the prescribing table). "
                "Pharmacies, laboratories, CGDIS."
            ),
        )

    async def handle(self, call: OperationCall) -> Outcome:
        today = self.clock().date()
        query = parse_query(call.parameters, call.method, today, self.table.categories)
        practitioner_id: str | None = None
        out: list[dict[str, Any]] = [{"name": "date", "valueDate": query.day}]
        if query.invalid is not None:
            reason, allowed = "invalid-identifier", False
        elif not in_window(query.day, today, self.past_days, self.future_days):
            reason, allowed = "date-out-of-range", False
        else:
            reason, allowed, practitioner_id, details = await self._decide(call.session.conn, query)
            out += details
        kind = caller_kind(call.ctx.caller)
        if kind is not None:
            self.usage.add(kind, "prescriber")
        text = query.invalid if reason == "invalid-identifier" and query.invalid else RESULTS[reason]
        head = [
            {"name": "allowed", "valueBoolean": allowed},
            {"name": "reason", "valueCoding": {"system": PRESCRIBER_RESULT_SYSTEM, "code": reason, "display": text}},
        ]
        body = {"resourceType": "Parameters", "parameter": [*head, *out]}
        who: dict[str, Any] = (
            {"reference": f"Practitioner/{practitioner_id}"}
            if practitioner_id
            else {"identifier": {"system": query.system, "value": query.value}}
        )
        entity = {"type": _PERSON_TYPE, "role": _DOCTOR_ROLE, "what": who}
        return Outcome(200, orjson.dumps(body), audit_entities=(entity,))

    async def _decide(
        self, conn: Connection, query: PrescriberQuery
    ) -> tuple[str, bool, str | None, list[dict[str, Any]]]:
        rows = await conn.fetch(LOOKUP, (query.day, query.day, query.system, query.value))
        if not rows:
            return "unknown-prescriber", False, None, []
        if len(rows) > 1:
            return "ambiguous-prescriber", False, None, []
        res_id, content, on_or_before, before_next, current = rows[0]
        status = str(on_or_before or before_next or current or "active")
        practitioner = orjson.loads(bytes(content))
        profession, specialties, recorded = qualifications_on(practitioner, query.day)
        details: list[dict[str, Any]] = [
            {
                "name": "practitioner",
                "valueReference": {
                    "reference": f"Practitioner/{res_id}",
                    "identifier": {"system": query.system, "value": query.value},
                },
            },
            {"name": "rightToPractise", "valueCode": status},
        ]
        concepts = professions()
        if profession is not None:
            details.append({"name": "profession", "valueCoding": concepts.concepts[profession].coding()})
        details += [{"name": "specialty", "valueCoding": concepts.concepts[s].coding()} for s in specialties]
        rights = self.table.rights(profession, specialties, query.categories)
        details += [_category(right, self.table.categories) for right in rights]
        if status != "active":
            return "no-right-to-practise", False, str(res_id), details
        if profession is None:
            return (
                ("not-authorised-on-date" if recorded else "profession-may-not-prescribe"),
                False,
                str(res_id),
                details,
            )
        if not self.table.may_prescribe(profession, specialties):
            return "profession-may-not-prescribe", False, str(res_id), details
        if not all(right.allowed for right in rights) if query.categories else not any(r.allowed for r in rights):
            return "category-not-allowed", False, str(res_id), details
        return "may-prescribe", True, str(res_id), details


def _category(right: CategoryRight, names: dict[str, str]) -> dict[str, Any]:
    part: list[dict[str, Any]] = [
        {
            "name": "code",
            "valueCoding": {
                "system": "urn:esante:wse:prescription-category",
                "code": right.category,
                "display": names.get(right.category, right.category),
            },
        },
        {"name": "allowed", "valueBoolean": right.allowed},
    ]
    if right.limitation:
        part.append({"name": "limitation", "valueString": right.limitation})
    return {"name": "category", "part": part}
