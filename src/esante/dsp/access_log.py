"""``GET Patient/{id}/$dsp-access-log``: who accessed or filed which document of the DSP, when, in which capacity.

For the holder and their assistants (403 for anyone else, 404 without a DSP). The log is read from the audit
trail — the REST AuditEvents the capture annotated (``access_log_capture.py``) — through the platform's search of
the patient's own AuditEvents, so the policy seam decides what is read exactly as for
``GET Patient/{id}/AuditEvent``; the trail is chained first (``FhirRouter.audit_readers``) so the log shows every
access already answered for. The call itself is audited like every interaction (its REST AuditEvent names the
patient).

Parameters (query): ``_since`` (FHIR date, dateTime or instant), ``_count`` (accesses per page, 1 to 200, default 50),
``own`` (``true``: include the holder's own accesses, flagged with capacity ``patient``; default ``false`` — the
assistants' accesses are always listed), ``_cursor`` (from the ``next`` link). Anything else, repeated or malformed
→ 400 naming it. Newest first. The answer is a ``Parameters``: an ``entry`` per document access (a filing of two
documents gives two entries of one access), each with ``when``, ``action``, ``capacity`` (one or more),
``who``, ``organization``, ``document``, ``class``, ``replaces``, ``event``; and ``next`` when there is more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson

from esante.dsp import lifecycle_store
from esante.dsp.access_log_model import (
    CAPACITY_SYSTEM,
    DOCUMENT,
    Capacity,
    LogEntry,
    LogQuery,
    LogQueryError,
    entries_of,
    format_cursor,
    next_cursor,
    parse_query,
)
from esante.dsp.mhd.classes import CLASS_SYSTEM, DocumentClasses, document_classes
from esante.dsp.operations import holder_or_assistant
from esante.fhir.context import Outcome
from esante.fhir.errors import bad_request, error, not_found
from esante.fhir.operations import OperationCall, OperationDefinition

if TYPE_CHECKING:
    from esante.app import Platform

NAME = "dsp-access-log"


def _search_query(query: LogQuery) -> list[tuple[str, str]]:
    shown = [c for c in Capacity if query.own or c is not Capacity.PATIENT]
    params = [
        ("agent-role", ",".join(f"{CAPACITY_SYSTEM}|{c.value}" for c in shown)),
        ("_sort", "-date"),
        ("_count", str(query.count)),
        ("_total", "none"),  # the next link needs no count (a COUNT over a busy patient's trail doubled the cost)
    ]
    if query.since:
        params.append(("date", f"ge{query.since}"))
    if query.cursor:
        params.append(("date", f"le{query.cursor[0]}"))
        if query.cursor[1]:
            params.append(("_offset", str(query.cursor[1])))
    return params


def _pairs(call: OperationCall) -> list[tuple[str, str]]:
    if call.method != "GET":
        raise error(405, "not-supported", f"${NAME} is read with GET (parameters in the query)")
    return list(call.query)


def _entry(entry: LogEntry, documents: dict[str, dict[str, Any]], classes: DocumentClasses) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"name": "when", "valueInstant": entry.when},
        {"name": "action", "valueCode": entry.action},
        *({"name": "capacity", "valueCode": c} for c in entry.capacities),
        {"name": "who", "valueReference": entry.who or {"display": "unknown"}},
    ]
    if entry.organization:
        parts.append({"name": "organization", "valueString": entry.organization})
    if entry.document:
        reference: dict[str, Any] = {"reference": entry.document}
        content = documents.get(entry.document)
        code = classes.class_of(content) if content is not None else None
        if code is not None:
            display = classes.displays.get(code, code)
            reference["display"] = display
            parts.append({"name": "document", "valueReference": reference})
            parts.append({"name": "class", "valueCoding": {"system": CLASS_SYSTEM, "code": code, "display": display}})
        else:
            parts.append({"name": "document", "valueReference": reference})
    if entry.replaces:
        parts.append({"name": "replaces", "valueReference": {"reference": entry.replaces}})
    parts.append({"name": "event", "valueReference": {"reference": f"AuditEvent/{entry.event}"}})
    return {"name": "entry", "part": parts}


async def _documents(platform: Platform, call: OperationCall, refs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The documents named, read as the caller (the policy decides; a destroyed document is simply absent)."""
    ids = sorted({ref.split("/", 1)[1] for ref in refs})
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 100):
        chunk = ids[start : start + 100]
        outcome = await platform.service.search(
            call.session, call.ctx, DOCUMENT, [("_id", ",".join(chunk)), ("_count", str(len(chunk)))]
        )
        for stored in outcome.touched or []:
            if stored.content is not None and stored.res_type == DOCUMENT:
                found[f"{DOCUMENT}/{stored.res_id}"] = orjson.loads(stored.content)
    return found


def access_log_operation(platform: Platform) -> OperationDefinition:
    classes = document_classes(platform.settings.mhd_document_classes_file)

    async def handler(call: OperationCall) -> Outcome:
        assert call.resource_id is not None
        patient = call.resource_id
        holder_or_assistant(call, patient)
        try:
            query = parse_query(_pairs(call))
        except LogQueryError as exc:
            raise bad_request(str(exc), expression=exc.parameter) from exc
        if await lifecycle_store.get(call.session.conn, patient) is None:
            raise not_found(f"Patient/{patient} has no DSP")
        outcome = await platform.service.search(
            call.session, call.ctx, "AuditEvent", _search_query(query), compartment=("Patient", patient)
        )
        body = outcome.body if isinstance(outcome.body, dict) else {}
        has_next = any(link.get("relation") == "next" for link in body.get("link", []))
        events = [orjson.loads(s.content) for s in outcome.touched or [] if s.content is not None]
        rows = [row for event in events for row in entries_of(event)]
        documents = await _documents(platform, call, [r.document for r in rows if r.document])
        parameters: list[dict[str, Any]] = [_entry(row, documents, classes) for row in rows]
        cursor = next_cursor(query.cursor, [str(e.get("recorded", "")) for e in events]) if has_next else None
        if cursor is not None:
            params = [("_count", str(query.count)), ("_cursor", format_cursor(*cursor))]
            if query.since:
                params.insert(0, ("_since", query.since))
            if query.own:
                params.append(("own", "true"))
            url = f"{call.ctx.base_url}/Patient/{patient}/${NAME}?{urlencode(params)}"
            parameters.append({"name": "next", "valueUri": url})
        return Outcome(200, {"resourceType": "Parameters", "parameter": parameters})

    return OperationDefinition(
        name=NAME,
        handler=handler,
        instance=True,
        resource_types=frozenset({"Patient"}),
        documentation="The DSP's access log (holder and assistants): who accessed or filed which document, when, "
        "in which capacity; _since, _count, own, _cursor.",
    )
