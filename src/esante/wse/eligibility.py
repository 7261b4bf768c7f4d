"""``CoverageEligibilityRequest/$check``: is this person affiliated on this day, with which fund, for which period?

An operation, not the standard create: the request is answered and not stored (a check is a question, 21 million a
year from pharmacies alone; storing each would keep a copy of who was checked where the audit trail already keeps
what accountability needs), and the answer is computed from the affiliations. Invocation:

    POST /fhir/CoverageEligibilityRequest/$check      body: a CoverageEligibilityRequest
    GET  /fhir/CoverageEligibilityRequest/$check?patient=urn:oid:1.3.182.4.4|<matricule>&servicedDate=2024-12-01

The hot path is one indexed SELECT on ``wse_affiliation`` (by matricule; by eSanté id through the MPI's
identifiers in the same statement) and a response assembled from constant parts. Every use is audited (the REST
AuditEvent names the person — the certified Patient, else the identifier asked — and the Coverages consulted) and
counted by caller kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from esante.db.engine import Connection
from esante.fhir.context import Outcome
from esante.fhir.model import StoredResource
from esante.fhir.operations import OperationCall, OperationDefinition
from esante.wse.callers import ELIGIBILITY_OPERATION, caller_kind
from esante.wse.eligibility_model import (
    RESULTS,
    Answer,
    CoverageRow,
    EligibilityQuery,
    decide,
    in_window,
    query_from_parameters,
    query_from_request,
    result_coding,
)
from esante.wse.model import (
    ESANTE_ID_SYSTEM,
    MATRICULE_SYSTEM,
    REQUEST_ID_SYSTEM,
    InsurerTable,
)
from esante.wse.usage import LUXEMBOURG, UsageCounter

_CERTIFIED = (
    "EXISTS (SELECT 1 FROM idx_token g WHERE g.rid = {rid} AND g.res_type = 'Patient' AND g.param = '_tag' "
    "AND g.system = 'urn:esante:identity-level' AND g.code = 'certified')"
)
_AFFILIATION_COLUMNS = "a.coverage_id, a.insurer, a.coverage_type, a.status, a.start_date, a.end_date"
# by matricule: the person's affiliations (none: one row of NULLs) and the certified Patient holding the matricule
BY_MATRICULE = (
    f"SELECT (SELECT r.res_id FROM idx_token t JOIN resource r ON r.rid = t.rid AND r.is_current AND NOT r.deleted "
    f"WHERE t.res_type = 'Patient' AND t.param = 'identifier' AND t.system = '{MATRICULE_SYSTEM}' AND t.code = q.m "
    f"AND {_CERTIFIED.format(rid='t.rid')} LIMIT 1), q.m, {_AFFILIATION_COLUMNS} "
    "FROM (SELECT CAST(? AS VARCHAR(13)) AS m) q LEFT JOIN wse_affiliation a ON a.matricule = q.m"
)
# by eSanté id: the certified Patient holding it, its matricule, and the affiliations of that matricule
BY_ESANTE_ID = (
    "SELECT p.pid, p.m, " + _AFFILIATION_COLUMNS + " FROM (SELECT r.res_id AS pid, m.code AS m FROM idx_token e "
    "JOIN resource r ON r.rid = e.rid AND r.is_current AND NOT r.deleted "
    f"JOIN idx_token m ON m.rid = e.rid AND m.res_type = 'Patient' AND m.param = 'identifier' "
    f"AND m.system = '{MATRICULE_SYSTEM}' "
    f"WHERE e.res_type = 'Patient' AND e.param = 'identifier' AND e.system = '{ESANTE_ID_SYSTEM}' AND e.code = ? "
    f"AND {_CERTIFIED.format(rid='e.rid')} LIMIT 1) p LEFT JOIN wse_affiliation a ON a.matricule = p.m"
)

_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_PERSON_TYPE = {"system": _ENTITY_TYPE, "code": "1", "display": "Person"}
_PATIENT_ROLE = {"system": _OBJECT_ROLE, "code": "1", "display": "Patient"}
_OBJECT_TYPE = {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"}
_RESOURCE_ROLE = {"system": _OBJECT_ROLE, "code": "4", "display": "Domain Resource"}


@dataclass(frozen=True)
class Found:
    patient_id: str | None
    matricule: str | None
    rows: list[CoverageRow]


async def lookup(conn: Connection, query: EligibilityQuery) -> Found:
    """One statement: the person's affiliations and certified Patient (by matricule, or by eSanté id)."""
    sql = BY_MATRICULE if query.by_matricule else BY_ESANTE_ID
    records = await conn.fetch(sql, (query.value,))
    if not records:
        return Found(None, None, [])
    first = records[0]
    rows = [
        CoverageRow(str(r[2]), str(r[3]), str(r[4]), str(r[5]), str(r[6]), str(r[7]) if r[7] is not None else None)
        for r in records
        if r[2] is not None
    ]
    return Found(str(first[0]) if first[0] is not None else None, str(first[1]) if first[1] else None, rows)


class EligibilityCheck:
    """The operation's handler, with the constant parts of its answers built once."""

    def __init__(
        self,
        insurers: InsurerTable,
        usage: UsageCounter,
        past_days: int,
        future_days: int,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.insurers = insurers
        self.usage = usage
        self.past_days = past_days
        self.future_days = future_days
        self.clock = clock or (lambda: datetime.now(LUXEMBOURG))
        self._register = insurers.register.reference()
        self._insurer_refs: dict[str, dict[str, Any]] = {}

    def definition(self) -> OperationDefinition:
        return OperationDefinition(
            name=ELIGIBILITY_OPERATION,
            handler=self.handle,
            type_level=True,
            resource_types=frozenset({"CoverageEligibilityRequest"}),
            requires="c",
            read_only=True,
            documentation=(
                "WSE eligibility check: is the person (matricule or eSanté patient id) affiliated at the CCSS on the "
                "date of service, with which fund, for which period. POST a CoverageEligibilityRequest, or GET "
                "?patient=system|value&servicedDate=YYYY-MM-DD. Nothing is stored. Pharmacies, laboratories, CGDIS."
            ),
        )

    def _insurer(self, code: str) -> dict[str, Any]:
        ref = self._insurer_refs.get(code)
        if ref is None:
            insurer = self.insurers.get(code)
            ref = insurer.reference() if insurer is not None else {"identifier": {"value": code}}
            self._insurer_refs[code] = ref
        return ref

    async def handle(self, call: OperationCall) -> Outcome:
        now = self.clock()
        today = now.date()
        if call.method == "GET":
            query = query_from_parameters(call.parameters, today)
        else:
            query = query_from_request(call.parameters, today)
        found = Found(None, None, [])
        answer: Answer
        if query.invalid is not None:
            answer = Answer(query.invalid)
        elif not in_window(query.served, today, self.past_days, self.future_days):
            answer = Answer("date-out-of-range")
        else:
            found = await lookup(call.session.conn, query)
            answer = decide(found.rows, query.served)
        body = self._response(query, found, answer, now, call.ctx.request_id)
        kind = caller_kind(call.ctx.caller)
        if kind is not None:
            self.usage.add(kind, "eligibility")
        touched = [StoredResource(0, "Patient", found.patient_id, 0, 0, False, None)] if found.patient_id else None
        return Outcome(200, orjson.dumps(body), touched=touched, audit_entities=_audit(query, found, answer))

    def _response(
        self, query: EligibilityQuery, found: Found, answer: Answer, now: datetime, request_id: str
    ) -> dict[str, Any]:
        patient: dict[str, Any] = {}
        if found.patient_id:
            patient["reference"] = f"Patient/{found.patient_id}"
        # the identifier as asked: a caller that named the person by eSanté id is not told their matricule
        patient["identifier"] = {"system": query.system, "value": query.value}
        request = (
            {"identifier": query.request_identifier}
            if query.request_identifier
            else {"identifier": {"system": REQUEST_ID_SYSTEM, "value": request_id or "none"}}
        )
        body: dict[str, Any] = {
            "resourceType": "CoverageEligibilityResponse",
            "status": "active",
            "purpose": list(query.purpose),
            "patient": patient,
            "servicedDate": query.served,
            "created": now.isoformat(timespec="seconds"),
            "request": request,
        }
        if answer.result is None:
            first = answer.in_force[0]
            body["outcome"] = "complete"
            body["disposition"] = f"affiliated on {query.served} ({body_insurer_name(self._insurer(first.insurer))})"
            body["insurer"] = self._insurer(first.insurer)
            body["insurance"] = [self._insurance(row, True) for row in answer.in_force]
            return body
        failed = answer.result in ("invalid-matricule", "invalid-esante-id", "date-out-of-range")
        body["outcome"] = "error" if failed else "complete"
        body["disposition"] = query.reason or RESULTS[answer.result]
        body["insurer"] = self._register
        if answer.others:
            body["insurance"] = [self._insurance(row, False) for row in answer.others]
        body["error"] = [{"code": result_coding(answer.result)}]
        return body

    def _insurance(self, row: CoverageRow, inforce: bool) -> dict[str, Any]:
        period: dict[str, str] = {"start": row.start}
        if row.end is not None:
            period["end"] = row.end
        insurer = self._insurer(row.insurer)
        return {
            "coverage": {"reference": f"Coverage/{row.coverage_id}", "display": insurer.get("display", row.insurer)},
            "inforce": inforce,
            "benefitPeriod": period,
        }


def _audit(query: EligibilityQuery, found: Found, answer: Answer) -> tuple[dict[str, Any], ...]:
    """The person checked (by identifier when the MPI has no certified Patient for them) and the Coverages read."""
    entities: list[dict[str, Any]] = []
    if found.patient_id is None:
        entities.append(
            {
                "type": _PERSON_TYPE,
                "role": _PATIENT_ROLE,
                "what": {"identifier": {"system": query.system, "value": query.value}},
            }
        )
    for row in (*answer.in_force, *answer.others):
        entities.append(
            {"type": _OBJECT_TYPE, "role": _RESOURCE_ROLE, "what": {"reference": f"Coverage/{row.coverage_id}"}}
        )
    return tuple(entities)


def body_insurer_name(reference: dict[str, Any]) -> str:
    return str(reference.get("display") or reference.get("identifier", {}).get("value", ""))
