"""The patient's access log over HTTP, on both databases: ``GET Patient/{id}/$dsp-access-log`` shows who read,
retrieved, searched, filed, replaced or hid which document, when and in which capacity (trusted circle, MR03,
relationship, emergency, author, establishment, assistant, the patient), from the audit trail; for the holder and
their assistants only; paged without losing or repeating an access; bad parameters refused; itself audited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from esante.dsp.access_log_capture import AccessLogCapture
from esante.dsp.access_log_model import Capacity
from esante.dsp.access_rule import Professional
from esante.dsp.context import dsp_context
from tests.dsp.dsp_support import (
    World,
    binary,
    document,
    dsp_world,
    outcome,
    parameters,
    practitioner,
    put,
)
from tests.dsp.mhd.support import FHIR_JSON, author_of, located, mhd_world, pdf, submission


def rows(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The log's entries as dicts: name → value (``capacity`` a list)."""
    found = []
    for parameter in body.get("parameter", []):
        if parameter["name"] != "entry":
            continue
        row: dict[str, Any] = {"capacity": []}
        for part in parameter["part"]:
            value = next(v for k, v in part.items() if k.startswith("value"))
            if part["name"] == "capacity":
                row["capacity"].append(value)
            else:
                row[part["name"]] = value
        found.append(row)
    return found


def next_link(body: dict[str, Any]) -> str | None:
    return next((p["valueUri"] for p in body.get("parameter", []) if p["name"] == "next"), None)


async def log(http: httpx.AsyncClient, world: World, patient: str, headers: dict[str, str], **query: str) -> Any:
    response = await http.get(f"{world.fhir}/Patient/{patient}/$dsp-access-log", params=query, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def grant(http: httpx.AsyncClient, world: World, patient: str, kind: str, who: str) -> None:
    body = parameters(kind=("valueCode", kind), practitioner={"reference": f"Practitioner/{who}"})
    response = await http.post(f"{world.fhir}/Patient/{patient}/$dsp-grant", json=body, headers=world.patient(patient))
    assert response.status_code in (200, 201), response.text


async def test_capacities_of_professionals(db_url: str, tmp_path: Path) -> None:
    async with dsp_world(db_url, tmp_path) as world, httpx.AsyncClient(timeout=30) as http:
        tc = await practitioner(http, world, "tc", 1)
        mr = await practitioner(http, world, "mr", 2)
        em = await practitioner(http, world, "em", 3)
        rel = await practitioner(http, world, "rel", 4)
        await practitioner(http, world, "au", 5)
        anna = await world.certified("anna", 1)
        await put(http, world, document("cons", anna, "consultation-report", author="Practitioner/au"))
        await put(http, world, document("sum", anna, "patient-summary"))
        await put(http, world, document("own", anna, "consultation-report", labels=("R",), author="Practitioner/rel"))
        await put(http, world, binary("cons"))
        await grant(http, world, anna, "trusted-circle", "tc")
        await grant(http, world, anna, "referent", "mr")
        await grant(http, world, anna, "block", "rel")
        emergency = await http.post(
            f"{world.fhir}/Patient/{anna}/$dsp-emergency",
            json=parameters(reason="unconscious"),
            headers=world.professional(em),
        )
        assert emergency.status_code == 201, emergency.text

        # a trusted-circle physician reads a document, retrieves its content and searches the DSP
        assert (
            await http.get(f"{world.fhir}/DocumentReference/cons", headers=world.professional(tc))
        ).status_code == 200
        assert (await http.get(f"{world.fhir}/Binary/bin-cons", headers=world.professional(tc))).status_code == 200
        found = await http.get(f"{world.fhir}/DocumentReference?patient=Patient/{anna}", headers=world.professional(tc))
        assert found.status_code == 200
        # MR03 through establishment software acting for them; an emergency physician; a blocked author
        assert (await http.get(f"{world.fhir}/DocumentReference/cons", headers=world.system_for(mr))).status_code == 200
        assert (
            await http.get(f"{world.fhir}/DocumentReference/sum", headers=world.professional(em))
        ).status_code == 200
        assert (
            await http.get(f"{world.fhir}/DocumentReference/own", headers=world.professional(rel))
        ).status_code == 200
        # refused accesses are not accesses: the blocked one's other document, the emergency's non-essential one
        assert (
            await http.get(f"{world.fhir}/DocumentReference/cons", headers=world.professional(rel))
        ).status_code == 404
        assert (
            await http.get(f"{world.fhir}/DocumentReference/cons", headers=world.professional(em))
        ).status_code == 404

        entries = rows(await log(http, world, anna, world.patient(anna)))
        seen = [
            (r["action"], r["who"].get("reference"), r.get("document", {}).get("reference"), r["capacity"])
            for r in entries
        ]
        assert seen[:6] == [
            ("read", "Practitioner/rel", "DocumentReference/own", ["author"]),
            ("read", "Practitioner/em", "DocumentReference/sum", ["emergency"]),
            ("read", "Practitioner/mr", "DocumentReference/cons", ["referent"]),
            ("search", "Practitioner/tc", None, ["trusted-circle"]),
            ("retrieve", "Practitioner/tc", "DocumentReference/cons", ["trusted-circle"]),
            ("read", "Practitioner/tc", "DocumentReference/cons", ["trusted-circle"]),
        ]
        # the filings by the establishment's software (the test's set-up), oldest last
        assert [(r["action"], r["capacity"], r["document"]["reference"]) for r in entries[6:]] == [
            ("file", ["establishment"], "DocumentReference/own"),
            ("file", ["establishment"], "DocumentReference/sum"),
            ("file", ["establishment"], "DocumentReference/cons"),
        ]
        first = entries[5]
        assert first["who"]["identifier"] == {"system": "urn:oid:1.3.182.2.8.1", "value": tc}
        assert first["who"]["display"] == "Alex Doc-tc"
        assert first["class"]["code"] == "consultation-report" and first["document"]["display"] == "Consultation report"
        assert first["when"].endswith("Z") and first["event"]["reference"].startswith("AuditEvent/")
        assert entries[6]["who"]["identifier"]["value"] == "test-system"
        # the evidence: the AuditEvent the entry names records the capacity on its requesting agent
        event = (await http.get(f"{world.fhir}/{first['event']['reference']}", headers=world.patient(anna))).json()
        user = next(a for a in event["agent"] if a.get("requestor"))
        assert {"system": "urn:esante:dsp:access-capacity", "code": "trusted-circle", "display": "trusted circle"} in [
            c for role in user["role"] for c in role["coding"]
        ]
        assert user["who"]["reference"] == "Practitioner/tc" and user["altId"] == tc


async def test_capacities_of_professionals_searching(db_url: str, tmp_path: Path) -> None:
    """A professional's search is logged with the ways in they hold for the patient (found with whether the patient
    has a DSP in one statement): authorship alone, a block leaving only authorship, a grant."""
    async with dsp_world(db_url, tmp_path) as world, httpx.AsyncClient(timeout=30) as http:
        tc = await practitioner(http, world, "tc", 1)
        au = await practitioner(http, world, "au", 2)
        rel = await practitioner(http, world, "rel", 3)
        anna = await world.certified("anna", 1)
        await put(http, world, document("cons", anna, "consultation-report", author="Practitioner/au"))
        await put(http, world, document("own", anna, "consultation-report", author="Practitioner/rel"))
        await grant(http, world, anna, "trusted-circle", "tc")
        await grant(http, world, anna, "trusted-circle", "rel")
        await grant(http, world, anna, "block", "rel")
        for who in (au, rel, tc):
            found = await http.get(
                f"{world.fhir}/DocumentReference?patient=Patient/{anna}", headers=world.professional(who)
            )
            assert found.status_code == 200, found.text
        searches = [
            (r["who"].get("reference"), r["capacity"])
            for r in rows(await log(http, world, anna, world.patient(anna)))
            if r["action"] == "search"
        ]
        assert searches == [
            ("Practitioner/tc", ["trusted-circle"]),
            ("Practitioner/rel", ["author"]),  # blocked: only what they wrote, though in the trusted circle
            ("Practitioner/au", ["author"]),  # no grant: the author of one of the patient's documents
        ]


async def test_relationship_and_filing_by_iti65_with_replacement(db_url: str, tmp_path: Path) -> None:
    async with mhd_world(db_url, tmp_path) as world, httpx.AsyncClient(timeout=60) as http:
        lea = world.patients["lea"]
        doctor = {**world.professional("dr-demo"), **FHIR_JSON}
        declared = await http.post(
            f"{world.fhir}/Patient/{lea}/$dsp-relationship", json={"resourceType": "Parameters"}, headers=doctor
        )
        assert declared.status_code in (200, 201), declared.text
        filed = await http.post(
            world.fhir,
            json=submission({"reference": f"Patient/{lea}"}, [pdf("one")], author=author_of("dr-demo")),
            headers=doctor,
        )
        assert filed.status_code == 200, filed.text
        (first,) = located(filed.json(), "DocumentReference")
        relation = [{"code": "replaces", "target": {"reference": f"DocumentReference/{first}"}}]
        bundle = submission(
            {"reference": f"Patient/{lea}"}, [pdf("two")], author=author_of("dr-demo"), relates_to=relation
        )
        replaced = await http.post(world.fhir, json=bundle, headers=doctor)
        assert replaced.status_code == 200, replaced.text
        (second,) = located(replaced.json(), "DocumentReference")
        # the establishment files for the patient too (no professional named)
        third = await http.post(
            world.fhir,
            json=submission({"reference": f"Patient/{lea}"}, [pdf("three")]),
            headers={**world.system(), **FHIR_JSON},
        )
        assert third.status_code == 200, third.text
        (establishment_doc,) = located(third.json(), "DocumentReference")
        entries = rows(await log(http, world, lea, world.patient(lea)))
        assert [(r["action"], r["capacity"], r["document"]["reference"], r.get("replaces")) for r in entries] == [
            ("file", ["establishment"], f"DocumentReference/{establishment_doc}", None),
            ("replace", ["relationship"], f"DocumentReference/{second}", {"reference": f"DocumentReference/{first}"}),
            ("file", ["relationship"], f"DocumentReference/{first}", None),
        ]
        assert entries[1]["class"]["code"] == "consultation-report"  # LOINC 11488-4, classified by ITI-65


async def test_who_may_read_the_log_and_bad_parameters(db_url: str, tmp_path: Path) -> None:
    async with dsp_world(db_url, tmp_path) as world, httpx.AsyncClient(timeout=30) as http:
        doctor = await practitioner(http, world, "tc", 1)
        anna = await world.certified("anna", 1)
        bert = await world.certified("bert", 2)
        await world.certified("nodsp", 3, active_dsp=False)
        await world.execute("DELETE FROM dsp_record WHERE patient_id = 'nodsp'")
        await put(http, world, document("d1", anna, "consultation-report"))
        url = f"{world.fhir}/Patient/{anna}/$dsp-access-log"
        # another patient, a professional, the establishment, staff: 403; no token: 401
        for headers in (world.patient(bert), world.professional(doctor), world.system(), world.staff("administrator")):
            outcome(await http.get(url, headers=headers), 403)
        outcome(await http.get(url), 401)
        outcome(await http.get(f"{world.fhir}/Patient/nodsp/$dsp-access-log", headers=world.patient("nodsp")), 404)
        # bad parameters: 400 naming the parameter
        for query, name in (
            ({"_count": "0"}, "_count"),
            ({"_count": "201"}, "_count"),
            ({"_count": "ten"}, "_count"),
            ({"_since": "yesterday"}, "_since"),
            ({"_since": "2026-13-01"}, "_since"),
            ({"own": "maybe"}, "own"),
            ({"_cursor": "nope"}, "_cursor"),
            ({"patient": "Patient/bert"}, "patient"),
        ):
            body = outcome(await http.get(url, params=query, headers=world.patient(anna)), 400)
            assert body["issue"][0]["expression"] == [name], body
        body = outcome(await http.get(f"{url}?_count=1&_count=2", headers=world.patient(anna)), 400)
        assert "more than once" in body["issue"][0]["diagnostics"]
        outcome(await http.post(url, json={"resourceType": "Parameters"}, headers=world.patient(anna)), 405)
        # the log call itself is audited: a REST event of the operation naming the patient
        assert (await http.get(url, headers=world.patient(anna))).status_code == 200
        events = await http.get(
            f"{world.fhir}/AuditEvent?patient=Patient/{anna}&subtype=operation&_count=50", headers=world.patient(anna)
        )
        queries = [
            entity["query"] for e in events.json()["entry"] for entity in e["resource"]["entity"] if "query" in entity
        ]
        import base64

        assert any("$dsp-access-log" in base64.b64decode(q).decode() for q in queries)


async def test_assistants_the_holders_own_accesses_and_paging(db_url: str, tmp_path: Path) -> None:
    async with dsp_world(db_url, tmp_path) as world, httpx.AsyncClient(timeout=30) as http:
        doctor = await practitioner(http, world, "tc", 1)
        anna = await world.certified("anna", 1)
        await world.certified("dora", 2)
        await world.execute(
            "INSERT INTO account (id, kind, username, status, patient_id, roles, totp_enabled, failed_logins,"
            " tokens_valid_after, created_at, updated_at) VALUES ('acct-dora', 'patient', 'dora', 'active', 'dora',"
            " '', ?, 0, 0, 0, 0)",
            False,
        )
        appointed = await http.post(
            f"{world.fhir}/Patient/{anna}/$dsp-grant",
            json=parameters(kind=("valueCode", "assistant"), assistant={"reference": "Patient/dora"}),
            headers=world.patient(anna),
        )
        assert appointed.status_code == 201, appointed.text
        await grant(http, world, anna, "trusted-circle", "tc")
        await put(http, world, document("d1", anna, "consultation-report"))
        assistant = world.assistant("acct-dora", "dora", anna)
        # the holder reads, the assistant reads and hides, the professional reads five times
        assert (await http.get(f"{world.fhir}/DocumentReference/d1", headers=world.patient(anna))).status_code == 200
        assert (await http.get(f"{world.fhir}/DocumentReference/d1", headers=assistant)).status_code == 200
        hidden = await http.post(f"{world.fhir}/DocumentReference/d1/$dsp-hide", headers=assistant)
        assert hidden.status_code == 200, hidden.text
        await http.post(f"{world.fhir}/DocumentReference/d1/$dsp-unhide", headers=world.patient(anna))
        for _ in range(5):
            assert (
                await http.get(f"{world.fhir}/DocumentReference/d1", headers=world.professional(doctor))
            ).status_code == 200

        # by default the holder's own accesses are left out; the assistant's are shown, named
        shown = rows(await log(http, world, anna, world.patient(anna)))
        assert [r["capacity"] for r in shown] == [["trusted-circle"]] * 5 + [["assistant"]] * 2 + [["establishment"]]
        assert [r["action"] for r in shown[5:7]] == ["hide", "read"]
        assert shown[5]["who"] == {"reference": "Patient/dora", "display": "Given2 Family2"}
        # own=true adds them, flagged with capacity patient; the assistant reads the same log
        everything = rows(await log(http, world, anna, assistant, own="true"))
        assert [r["action"] for r in everything if r["capacity"] == ["patient"]] == ["unhide", "read"]
        assert len(everything) == 10

        # paging: two accesses a page, newest first, every access exactly once, through the next links; an access
        # made while paging does not shift the pages still to come
        pages: list[list[str]] = []
        body = await log(http, world, anna, world.patient(anna), own="true", _count="2")
        while True:
            pages.append([r["event"]["reference"] for r in rows(body)])
            link = next_link(body)
            if link is None:
                break
            assert link.startswith(world.fhir) and "_cursor=" in link and "own=true" in link
            if len(pages) == 1:
                assert (
                    await http.get(f"{world.fhir}/DocumentReference/d1", headers=world.professional(doctor))
                ).status_code == 200
            response = await http.get(link, headers=world.patient(anna))
            assert response.status_code == 200, response.text
            body = response.json()
        assert [len(p) for p in pages] == [2, 2, 2, 2, 2]
        assert [e for page in pages for e in page] == [r["event"]["reference"] for r in everything]
        # _since keeps the newest only (the access made while paging, then the five before it)
        since = everything[4]["when"]
        recent = rows(await log(http, world, anna, world.patient(anna), _since=since))
        assert len(recent) == 6 and [r["event"] for r in recent[1:]] == [r["event"] for r in everything[:5]]


async def test_the_capacity_capture_keeps_a_cached_plan(db_url: str, tmp_path: Path) -> None:
    """The capture's one statement answers alike on each call and, on PostgreSQL, runs on its cached generic plan
    after the first few (planning it anew cost ~0.8 ms of every professional's search). (Its former shape also
    kept a generic plan on data this small; on 1.46 M documents it did not — bench/dsp_mhd.py is where the
    difference shows.)"""
    async with dsp_world(db_url, tmp_path) as world, httpx.AsyncClient(timeout=30) as http:
        await practitioner(http, world, "au", 1)
        await practitioner(http, world, "tc", 2)
        anna = await world.certified("anna", 1)
        await put(http, world, document("cons", anna, "consultation-report", author="Practitioner/au"))
        await grant(http, world, anna, "trusted-circle", "tc")
        context = dsp_context(world.platform)
        capture = AccessLogCapture(world.database, context)
        author, circle = Professional("au", ("medecin",)), Professional("tc", ("medecin",))
        async with world.database.read() as conn:
            for _ in range(8):
                assert await capture._held(conn, author, anna, context.now()) == (Capacity.AUTHOR,)
                assert await capture._held(conn, circle, anna, context.now()) == (Capacity.TRUSTED_CIRCLE,)
                assert await capture._held(conn, circle, "nobody", context.now()) is None  # no DSP
            if conn.dialect.is_postgres:
                plans = await conn.fetchrow(
                    "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE ?",
                    ("SELECT 'dsp-record' FROM dsp_record%",),
                )
                assert plans is not None and plans[0] > 0, plans
