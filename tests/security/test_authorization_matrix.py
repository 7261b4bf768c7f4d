"""The authorization matrix: every kind of caller by every read path (and some writes), over real HTTP, on both
databases. One table states what each caller must get; the test runs it against a uvicorn server on loopback and
reports every cell that differs.

Callers: no token; a patient (A) and a DSP assistant acting for A; a patient app granted only
``patient/Observation.rs``; a professional (directory only until the DSP rules); staff administrator,
identity-vigilance agent and statistician; a laboratory system client (``system/Observation.rs
system/Patient.rs``), a client with a granular scope (``system/Observation.rs?code=…29463-7``) and the all-rights
integration client.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import httpx
import pytest

from esante.config import Settings
from esante.db.engine import create_database
from esante.db.migrate import upgrade
from esante.security.keys import KeyRing
from esante.security.tokens import (
    CLI_CLIENT_ID,
    PURPOSE_SYSTEM,
    ROLE_SYSTEM,
    Coding,
    IuaClaims,
    mint,
    mint_for,
    principal,
)
from tests.auth import ALL_RIGHTS, TEST_CLIENT, register_client
from tests.live_server import loopback_settings, serve

WEIGHT = "http://loinc.org|29463-7"
SYSTOLIC = "http://loinc.org|8480-6"
CALLERS = (
    "anon",
    "patient",
    "assistant",
    "app",
    "professional",
    "admin",
    "vigilance",
    "statistician",
    "lab",
    "granular",
    "all",
)


def _observation(subject: str, code: str) -> dict[str, Any]:
    system, value = code.split("|")
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": system, "code": value}]},
        "subject": {"reference": f"Patient/{subject}"},
    }


def _data() -> list[tuple[str, str, dict[str, Any]]]:
    """(type, id, resource) written by the all-rights client with PUT (ids chosen by the test)."""
    text = base64.b64encode(b"letter").decode()
    return [
        ("Patient", "pa", {"resourceType": "Patient", "id": "pa", "name": [{"family": "Alpha"}]}),
        ("Patient", "pb", {"resourceType": "Patient", "id": "pb", "name": [{"family": "Bravo"}]}),
        ("Observation", "oa", {**_observation("pa", WEIGHT), "id": "oa"}),
        ("Observation", "oa2", {**_observation("pa", SYSTOLIC), "id": "oa2"}),
        ("Observation", "ob", {**_observation("pb", WEIGHT), "id": "ob"}),
        ("Observation", "ob", {**_observation("pb", WEIGHT), "id": "ob", "status": "amended"}),
        (
            "DocumentReference",
            "da",
            {
                "resourceType": "DocumentReference",
                "id": "da",
                "status": "current",
                "subject": {"reference": "Patient/pa"},
                "content": [{"attachment": {"contentType": "text/plain", "url": "Binary/bina"}}],
            },
        ),
        (
            "DocumentReference",
            "db",
            {
                "resourceType": "DocumentReference",
                "id": "db",
                "status": "current",
                "subject": {"reference": "Patient/pb"},
                "content": [{"attachment": {"contentType": "text/plain", "url": "Binary/binb"}}],
            },
        ),
        (
            "Binary",
            "bina",
            {
                "resourceType": "Binary",
                "id": "bina",
                "contentType": "text/plain",
                "data": text,
                "securityContext": {"reference": "DocumentReference/da"},
            },
        ),
        (
            "Binary",
            "binb",
            {
                "resourceType": "Binary",
                "id": "binb",
                "contentType": "text/plain",
                "data": text,
                "securityContext": {"reference": "DocumentReference/db"},
            },
        ),
        ("Practitioner", "pr", {"resourceType": "Practitioner", "id": "pr", "name": [{"family": "Doc"}]}),
        ("Organization", "org", {"resourceType": "Organization", "id": "org", "name": "CHL"}),
    ]


async def _prepare_database(settings: Settings) -> str:
    """Clients and the assistant's account; returns the assistant's account id."""
    upgrade(settings.effective_database_url)
    database = create_database(settings.effective_database_url, pool_size=1)
    await database.connect()
    try:
        await register_client(database, TEST_CLIENT, ALL_RIGHTS)
        await register_client(database, "lab", "system/Observation.rs system/Patient.rs", kind="laboratory")
        await register_client(database, "granular", f"system/Observation.rs?code={WEIGHT}", kind="laboratory")
        now = int(time.time()) - 5
        async with database.transaction() as conn:
            await conn.execute(
                "INSERT INTO account (id, kind, username, status, patient_id, roles, totp_enabled, failed_logins,"
                " tokens_valid_after, created_at, updated_at) VALUES ('acct-c', 'patient', 'carla', 'active', 'pc',"
                " '', ?, 0, 0, ?, ?)",
                (True, now, now),
            )
            await conn.execute(
                "INSERT INTO account_delegation (account_id, patient_id, created_at) VALUES ('acct-c', 'pa', ?)",
                (now,),
            )
        return "acct-c"
    finally:
        await database.close()


def _tokens(settings: Settings, assistant_account: str) -> dict[str, str | None]:
    ring = KeyRing.load_or_create(settings)

    def cli(who: str, scope: str | None = None, **extra: Any) -> str:
        return mint_for(settings, ring, principal(who), scope=scope, extra_claims=extra or None)

    assistant = mint(
        ring,
        issuer=settings.effective_issuer,
        audience=settings.effective_audience,
        subject=assistant_account,
        client_id=CLI_CLIENT_ID,
        scope="patient/*.rs",
        ttl=600,
        iua=IuaClaims(
            subject_role=Coding(ROLE_SYSTEM, "assistant"),
            purpose_of_use=(Coding(PURPOSE_SYSTEM, "PATRQT"),),
            person_id="pa",
        ),
        extra_claims={"acct": assistant_account, "fhirUser": "Patient/pc"},
    )
    return {
        "anon": None,
        "patient": cli("patient:pa"),
        "assistant": assistant,
        "app": cli("patient:pa", "patient/Observation.rs"),
        "professional": cli("professional:2854123452"),
        "admin": cli("staff:ada", roles=["administrator"]),
        "vigilance": cli("staff:ivo", roles=["identity-vigilance"]),
        "statistician": cli("staff:sam", roles=["statistician"]),
        "lab": cli("system:lab", "system/Observation.rs system/Patient.rs"),
        "granular": cli("system:granular", f"system/Observation.rs?code={WEIGHT}"),
        "all": cli(f"system:{TEST_CLIENT}", ALL_RIGHTS),
    }


# --- how a response is summarised -----------------------------------------------------------------------------


def _summary(response: httpx.Response) -> Any:
    """A status for refusals; for bundles the (mode:)Type/id entries and the total; else status."""
    if response.status_code >= 400:
        body = response.json()
        assert body["resourceType"] == "OperationOutcome", body
        return response.status_code
    if not response.headers.get("content-type", "").startswith("application/fhir+json"):
        return response.status_code  # a Binary's own content (FHIR Binary read with Accept */*; MHD ITI-68)
    body = response.json()
    if body.get("resourceType") != "Bundle":
        return response.status_code
    if body["type"] == "history":
        return sorted(f"{e['fullUrl'].split('/fhir/')[1]}@{e['response']['etag']}" for e in body.get("entry", []))
    if body["type"] in ("batch-response", "transaction-response"):
        return [e["response"]["status"].split()[0] for e in body["entry"]]
    entries = sorted(
        f"{e['search']['mode']}:{e['fullUrl'].split('/fhir/')[1]}" for e in body.get("entry", []) if "search" in e
    )
    return {"entries": entries, "total": body.get("total")}


def found(*refs: str, total: int | None = None, includes: tuple[str, ...] = ()) -> dict[str, Any]:
    entries = sorted([f"match:{r}" for r in refs] + [f"include:{r}" for r in includes])
    return {"entries": entries, "total": len(refs) if total is None else total}


NONE = found()
ALL = CALLERS[1:]
PATIENTS = ("patient", "assistant")


def table(default: Any, **cells: Any) -> dict[str, Any]:
    """Expected summaries: ``default`` for every authenticated caller not named; 401 for the anonymous one."""
    expected = dict.fromkeys(ALL, default)
    for names, value in cells.items():
        for name in names.split("__"):
            expected[name] = value
    expected["anon"] = 401
    return expected


Request = tuple[str, str, dict[str, Any] | None]


def cases() -> list[tuple[str, Request, dict[str, Any]]]:
    obs_all = ("Observation/oa", "Observation/oa2", "Observation/ob")
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": "Observation/ob"}},
            {"request": {"method": "GET", "url": "Observation/oa"}},
        ],
    }
    new_obs = _observation("pa", WEIGHT)
    return [
        ("read own Patient", ("GET", "Patient/pa", None), table(403, patient__assistant__vigilance__lab__all=200)),
        (
            "read other Patient",
            ("GET", "Patient/pb", None),
            table(403, patient__assistant=404, vigilance__lab__all=200),
        ),
        (
            "read other's Observation",
            ("GET", "Observation/ob", None),
            table(403, patient__assistant__app=404, lab__granular__all=200),
        ),
        (
            "read own Observation outside the granular scope",
            ("GET", "Observation/oa2", None),
            table(403, patient__assistant__app__lab__all=200, granular=404),
        ),
        (
            "vread other's Observation",
            ("GET", "Observation/ob/_history/1", None),
            table(403, patient__assistant__app=404, lab__granular__all=200),
        ),
        (
            "search Observation",
            ("GET", "Observation", None),
            table(
                403,
                patient__assistant__app=found("Observation/oa", "Observation/oa2"),
                lab__all=found(*obs_all),
                granular=found("Observation/oa", "Observation/ob"),
            ),
        ),
        (
            "count Observation",
            ("GET", "Observation?_summary=count", None),
            table(
                403,
                patient__assistant__app=found(total=2),
                lab__all__statistician=found(total=3),
                granular=found(total=2),
            ),
        ),
        (
            "search by the other patient",
            ("GET", "Observation?subject=Patient/pb", None),
            table(403, patient__assistant__app=NONE, lab__granular__all=found("Observation/ob")),
        ),
        (
            "chain through Patient",
            ("GET", "Observation?subject:Patient.family=Bravo", None),
            table(403, patient__assistant__app=NONE, lab__all=found("Observation/ob"), granular=NONE),
        ),
        (
            "_include the subject",
            ("GET", "Observation?_include=Observation:subject", None),
            table(
                403,
                patient__assistant=found("Observation/oa", "Observation/oa2", includes=("Patient/pa",)),
                app=found("Observation/oa", "Observation/oa2"),
                lab__all=found(*obs_all, includes=("Patient/pa", "Patient/pb")),
                granular=found("Observation/oa", "Observation/ob"),
            ),
        ),
        (
            "_revinclude Observations",
            ("GET", "Patient?_revinclude=Observation:subject", None),
            table(
                403,
                patient__assistant=found("Patient/pa", includes=("Observation/oa", "Observation/oa2")),
                vigilance=found("Patient/pa", "Patient/pb"),
                lab__all=found("Patient/pa", "Patient/pb", includes=obs_all),
            ),
        ),
        (
            "_has an Observation",
            ("GET", "Patient?_has:Observation:subject:code=8480-6", None),
            table(403, patient__assistant=found("Patient/pa"), vigilance=NONE, lab__all=found("Patient/pa")),
        ),
        (
            "compartment of the other patient",
            ("GET", "Patient/pb/Observation", None),
            table(403, patient__assistant__app=NONE, lab__granular__all=found("Observation/ob")),
        ),
        (
            "history of the other's Observation",
            ("GET", "Observation/ob/_history", None),
            table(
                403,
                patient__assistant__app=404,
                lab__granular__all=['Observation/ob@W/"1"', 'Observation/ob@W/"2"'],
            ),
        ),
        (
            "history of the type",
            ("GET", "Observation/_history", None),
            table(
                403,
                patient__assistant__app=['Observation/oa2@W/"1"', 'Observation/oa@W/"1"'],
                lab__all=[
                    'Observation/oa2@W/"1"',
                    'Observation/oa@W/"1"',
                    'Observation/ob@W/"1"',
                    'Observation/ob@W/"2"',
                ],
                granular=['Observation/oa@W/"1"', 'Observation/ob@W/"1"', 'Observation/ob@W/"2"'],
            ),
        ),
        ("own Binary", ("GET", "Binary/bina", None), table(403, patient__assistant=200, all=200)),
        ("other's Binary", ("GET", "Binary/binb", None), table(403, patient__assistant=404, all=200)),
        (
            "batch reading both patients' Observations",
            ("POST", "", batch),
            table(
                ["403", "403"],
                patient__assistant__app=["404", "200"],
                lab__granular__all=["200", "200"],
            ),
        ),
        ("$validate", ("POST", "Observation/$validate", new_obs), table(200)),
        ("create an Observation", ("POST", "Observation", new_obs), table(403, all=201)),
        (
            "directory search",
            ("GET", "Practitioner", None),
            table(403, patient__assistant__professional__admin__vigilance__all=found("Practitioner/pr")),
        ),
        (
            "own audit trail",
            ("GET", "AuditEvent?patient=Patient/pb&_summary=count", None),
            table(403, patient__assistant=NONE, statistician=None, admin=None, all=None),
        ),
    ]


def _run(base: str, tokens: dict[str, str | None], request: Request) -> dict[str, Any]:
    method, path, body = request
    results: dict[str, Any] = {}
    with httpx.Client(timeout=30) as http:
        for name, value in tokens.items():
            headers = {"Content-Type": "application/fhir+json"}
            if value is not None:
                headers["Authorization"] = f"Bearer {value}"
            response = http.request(method, f"{base}/{path}".rstrip("/"), json=body, headers=headers)
            results[name] = _summary(response)
    return results


def _matches(expected: Any, actual: Any) -> bool:
    if expected is None:  # "allowed, contents depend on the audit trail so far"
        return isinstance(actual, dict)
    return bool(expected == actual)


def test_authorization_matrix(db_url: str, tmp_path: Any) -> None:
    settings = loopback_settings(var_dir=tmp_path, database_url=db_url)
    assistant = asyncio.run(_prepare_database(settings))
    tokens = _tokens(settings, assistant)
    with serve(settings) as base, httpx.Client(timeout=30) as http:
        writer = {"Authorization": f"Bearer {tokens['all']}", "Content-Type": "application/fhir+json"}
        for res_type, res_id, resource in _data():
            response = http.put(f"{base}/{res_type}/{res_id}", json=resource, headers=writer)
            assert response.status_code in (200, 201), response.text
        mismatches: list[str] = []
        for name, request, expected in cases():
            actual = _run(base, tokens, request)
            for caller in CALLERS:
                if not _matches(expected[caller], actual[caller]):
                    mismatches.append(f"{name} / {caller}: expected {expected[caller]!r}, got {actual[caller]!r}")
        assert not mismatches, "\n".join(mismatches)


def test_a_patient_reads_the_audit_of_their_own_compartment(db_url: str, tmp_path: Any) -> None:
    settings = loopback_settings(var_dir=tmp_path, database_url=db_url)
    assistant = asyncio.run(_prepare_database(settings))
    tokens = _tokens(settings, assistant)
    with serve(settings) as base, httpx.Client(timeout=30) as http:
        writer = {"Authorization": f"Bearer {tokens['all']}"}
        for res_type, res_id, resource in _data()[:5]:
            assert http.put(f"{base}/{res_type}/{res_id}", json=resource, headers=writer).status_code in (200, 201)
        lab = {"Authorization": f"Bearer {tokens['lab']}"}
        assert http.get(f"{base}/Observation/oa", headers=lab).status_code == 200
        mine = {"Authorization": f"Bearer {tokens['patient']}"}
        trail = http.get(f"{base}/AuditEvent?patient=Patient/pa&_count=100", headers=mine).json()
        readers = set()
        for entry in trail["entry"]:
            event = entry["resource"]
            patients = [e["what"]["reference"] for e in event["entity"] if e.get("role", {}).get("code") == "1"]
            assert patients == ["Patient/pa"], "only events about the patient's own compartment"
            if event["subtype"][0]["code"] == "read":
                readers |= {a["who"].get("identifier", {}).get("value") for a in event["agent"] if a.get("requestor")}
        assert "system:lab" in readers, "the patient sees who read their Observation"
        same = http.get(f"{base}/Patient/pa/AuditEvent?_summary=count", headers=mine).json()
        assert same["total"] == trail["total"] + 1, "the same events, and the audit of the first search"
        other = http.get(f"{base}/AuditEvent?patient=Patient/pb&_summary=count", headers=mine).json()
        assert other["total"] == 0
        assert http.post(f"{base}/AuditEvent", json={"resourceType": "AuditEvent"}, headers=writer).status_code == 405


@pytest.mark.parametrize("change", ["revoke delegation", "suspend account"])
def test_an_assistant_loses_access_on_the_next_request(db_url: str, tmp_path: Any, change: str) -> None:
    settings = loopback_settings(var_dir=tmp_path, database_url=db_url)
    assistant = asyncio.run(_prepare_database(settings))
    tokens = _tokens(settings, assistant)

    async def apply() -> None:
        database = create_database(settings.effective_database_url, pool_size=1)
        await database.connect()
        try:
            async with database.transaction() as conn:
                if change == "revoke delegation":
                    await conn.execute(
                        "UPDATE account_delegation SET revoked_at = ? WHERE account_id = ?", (1, assistant)
                    )
                else:
                    await conn.execute("UPDATE account SET status = 'suspended' WHERE id = ?", (assistant,))
        finally:
            await database.close()

    with serve(settings) as base, httpx.Client(timeout=30) as http:
        writer = {"Authorization": f"Bearer {tokens['all']}"}
        assert http.put(f"{base}/Patient/pa", json=_data()[0][2], headers=writer).status_code == 201
        headers = {"Authorization": f"Bearer {tokens['assistant']}"}
        assert http.get(f"{base}/Patient/pa", headers=headers).status_code == 200
        asyncio.run(apply())
        refused = http.get(f"{base}/Patient/pa", headers=headers)
        assert refused.status_code == 401 and "invalid_token" in refused.headers["www-authenticate"]
