"""The access log's pure parts: which interactions are DSP document accesses, the annotation written into a BALP
AuditEvent and read back into log entries, the operation's parameters, the paging cursor, the notices' texts."""

from __future__ import annotations

from typing import Any

import pytest

from esante.dsp.access_log_model import (
    CAPACITY_SYSTEM,
    WRITE,
    Action,
    Annotation,
    Capacity,
    DocumentFacts,
    LogQuery,
    LogQueryError,
    annotate,
    entries_of,
    event_documents,
    event_patient,
    format_cursor,
    next_cursor,
    parse_cursor,
    parse_query,
    target_of,
)
from esante.dsp.mhd.classes import document_classes
from esante.dsp.notices import new_document_text
from esante.dsp.notices_openings import opened_text
from esante.security.audit import AuditRecord, Touched, build_events
from esante.security.policy import Caller

PRO = Caller("professional", "professional:2860000013", ("user/*.rs",), attributes={"dsp_practitioner": "tc"})


def record(interaction: str, path: str, status: int = 200, **values: Any) -> AuditRecord:
    parts = [p for p in path.split("?")[0].split("/") if p]
    res_type = parts[0] if parts and not parts[0].startswith("$") else None
    res_id = parts[1] if len(parts) > 1 and not parts[1].startswith(("$", "_")) else None
    return AuditRecord(
        interaction=interaction,
        status=status,
        caller=values.pop("caller", PRO),
        request_id="r1",
        recorded="2026-12-02T10:00:00.000001Z",
        server="http://x/fhir",
        path=path,
        resource_type=res_type,
        resource_id=res_id,
        **values,
    )


@pytest.mark.parametrize(
    ("interaction", "path", "expected"),
    [
        ("read", "DocumentReference/d1", (Action.READ, "DocumentReference/d1")),
        ("vread", "DocumentReference/d1/_history/2", (Action.READ, "DocumentReference/d1")),
        ("history-instance", "DocumentReference/d1/_history", (Action.READ, "DocumentReference/d1")),
        ("read", "Binary/b1", (Action.RETRIEVE, None)),
        ("search-type", "DocumentReference", (Action.SEARCH, None)),
        ("search-type", "Patient/p1/DocumentReference", (Action.SEARCH, None)),
        ("create", "DocumentReference", (WRITE, None)),
        ("patch", "DocumentReference/d1", (WRITE, None)),
        ("transaction", "", (WRITE, None)),
        ("operation", "DocumentReference/d1/$dsp-hide", (Action.HIDE, "DocumentReference/d1")),
        ("operation", "DocumentReference/d1/$dsp-confidentiality", (Action.CONFIDENTIALITY, "DocumentReference/d1")),
        ("operation", "Patient/p1/$dsp-grant", None),
        ("operation", "DocumentReference/$validate", None),
        ("read", "Patient/p1", None),
        ("search-type", "Observation", None),
        ("create", "Binary", None),
        ("search-type", "List", None),
    ],
)
def test_which_interactions_are_document_accesses(interaction: str, path: str, expected: Any) -> None:
    target = target_of(record(interaction, path))
    assert (None if target is None else (target.action, target.document)) == expected


def test_failures_are_not_accesses() -> None:
    assert target_of(record("read", "DocumentReference/d1", status=404)) is None
    assert target_of(record("create", "DocumentReference", status=403)) is None


def _read_events() -> list[dict[str, Any]]:
    touched = (Touched("Binary/b1"), Touched("DocumentReference/d1", ("Patient/p1",)))
    return build_events(record("read", "Binary/b1", touched=touched))


def test_annotation_round_trip() -> None:
    events = _read_events()
    assert [event_patient(e) for e in events] == [None, "p1"]
    event = events[1]
    assert event_documents(event) == ["DocumentReference/d1"]
    before = [dict(agent) for agent in events[0]["agent"]]
    annotation = Annotation(
        (Capacity.TRUSTED_CIRCLE, Capacity.EMERGENCY),
        {"DocumentReference/d1": DocumentFacts(Action.RETRIEVE, (Capacity.TRUSTED_CIRCLE, Capacity.EMERGENCY))},
        who_reference="Practitioner/tc",
        who_name="Alex Doc",
        ehealth_id="2860000013",
    )
    annotate(event, annotation)
    # the other event of the record (it shares agents with this one) is left as built
    assert events[0]["agent"] == before
    user = next(a for a in event["agent"] if a.get("requestor"))
    codes = [c["code"] for role in user["role"] for c in role["coding"] if c["system"] == CAPACITY_SYSTEM]
    assert codes == ["trusted-circle", "emergency"]
    assert user["who"]["reference"] == "Practitioner/tc" and user["altId"] == "2860000013"
    assert user["who"]["identifier"]["value"] == "professional:2860000013"  # the caller's subject is kept
    (entry,) = entries_of({**event, "id": "ev1"})
    assert entry.action == "retrieve" and entry.document == "DocumentReference/d1"
    assert entry.capacities == ("trusted-circle", "emergency")
    assert entry.who == {
        "reference": "Practitioner/tc",
        "identifier": {"system": "urn:oid:1.3.182.2.8.1", "value": "2860000013"},
        "display": "Alex Doc",
    }
    assert entry.event == "ev1" and entry.when == "2026-12-02T10:00:00.000001Z"


def test_annotation_of_a_search_and_of_an_operation_without_document_entity() -> None:
    (search,) = build_events(
        record(
            "search-type",
            "DocumentReference?patient=Patient/p1",
            touched=(Touched("DocumentReference/d1", ("Patient/p1",)),),
        )
    )
    annotate(search, Annotation((Capacity.RELATIONSHIP,), query_action=Action.SEARCH))
    (entry,) = entries_of({**search, "id": "s"})
    assert (entry.action, entry.document, entry.capacities) == ("search", None, ("relationship",))
    (hide,) = build_events(
        record(
            "operation", "DocumentReference/d1/$dsp-hide", touched=(Touched("DocumentReference/d1", ("Patient/p1",)),)
        )
    )
    annotate(
        hide,
        Annotation((Capacity.ASSISTANT,), {"DocumentReference/d9": DocumentFacts(Action.HIDE, (Capacity.ASSISTANT,))}),
    )
    entries = entries_of({**hide, "id": "h"})
    assert [(e.action, e.document) for e in entries] == [("hide", "DocumentReference/d9")]


def test_a_replacement_names_what_it_replaces_and_an_establishment_its_client() -> None:
    caller = Caller("system", "test-system", ("system/*.cruds",), attributes={"client_id": "test-system"})
    (event,) = build_events(
        record(
            "transaction",
            "",
            caller=caller,
            touched=(Touched("DocumentReference/new", ("Patient/p1",)), Touched("List/s", ("Patient/p1",))),
        )
    )
    facts = DocumentFacts(Action.REPLACE, (Capacity.ESTABLISHMENT,), "DocumentReference/old")
    annotate(event, Annotation((Capacity.ESTABLISHMENT,), {"DocumentReference/new": facts}))
    (entry,) = entries_of({**event, "id": "t"})
    assert entry.replaces == "DocumentReference/old" and entry.action == "replace"
    assert entry.who["identifier"] == {"system": "urn:esante:oauth-client", "value": "test-system"}


def test_parameters() -> None:
    assert parse_query([]) == LogQuery()
    assert parse_query([("_since", "2026-01"), ("_count", "7"), ("own", "true"), ("_format", "json")]) == LogQuery(
        "2026-01", 7, True
    )
    cursor = format_cursor("2026-12-02T10:00:00.000001Z", 3)
    assert parse_query([("_cursor", cursor)]).cursor == ("2026-12-02T10:00:00.000001Z", 3)
    for pairs, name in (
        ([("_count", "0")], "_count"),
        ([("_count", "-1")], "_count"),
        ([("_count", "201")], "_count"),
        ([("_since", "12/02/2026")], "_since"),
        ([("own", "yes")], "own"),
        ([("_cursor", "2026~x")], "_cursor"),
        ([("_cursor", "notadate~1")], "_cursor"),
        ([("_sort", "date")], "_sort"),
        ([("own", "true"), ("own", "false")], "own"),
    ):
        with pytest.raises(LogQueryError) as raised:
            parse_query(pairs)
        assert raised.value.parameter == name
    with pytest.raises(ValueError):
        parse_cursor("no-tilde")


def test_the_cursor_counts_the_accesses_listed_at_the_last_instant() -> None:
    a, b, c = "2026-12-02T10:00:03Z", "2026-12-02T10:00:02Z", "2026-12-02T10:00:01Z"
    assert next_cursor(None, []) is None
    assert next_cursor(None, [a, b]) == (b, 1)
    assert next_cursor(None, [a, b, b]) == (b, 2)
    assert next_cursor((b, 2), [b, b]) == (b, 4)  # the whole page at the previous instant: the count goes on
    assert next_cursor((b, 2), [b, c]) == (c, 1)


def test_notice_texts_hold_no_content() -> None:
    classes = document_classes()
    text = new_document_text(
        {
            "resourceType": "DocumentReference",
            "type": {"coding": [{"system": "http://loinc.org", "code": "11502-2", "display": "Laboratory report"}]},
        },
        classes,
    )
    assert text == "A new document was added to your shared care record (DSP): Laboratory results — Laboratory report."
    assert new_document_text({"resourceType": "DocumentReference"}, classes).endswith(": a document.")
    assert "Until 2026-12-31" in opened_text(1798675200)
