"""Notifications over HTTP (uvicorn on loopback): who reads which, marking read, e-mail choices, and the server's
background delivery to a real SMTP server. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from esante.config import Settings
from esante.db.engine import create_database
from esante.db.migrate import upgrade
from esante.notify import make_key
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
from tests.notify.support import add_account, create_notification, smtp_server

FHIR_JSON = "application/fhir+json"


@dataclass
class World:
    base: str
    http: httpx.Client
    tokens: dict[str, str]
    ids: dict[str, str]

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def get(self, who: str, path: str) -> httpx.Response:
        return self.http.get(f"{self.base}/{path}", headers=self.as_(who))

    def post(self, who: str, path: str, body: Any = None) -> httpx.Response:
        headers = {**self.as_(who), "Content-Type": FHIR_JSON}
        return (
            self.http.post(f"{self.base}/{path}", json=body, headers=headers)
            if body is not None
            else (self.http.post(f"{self.base}/{path}", headers=self.as_(who)))
        )


async def _prepare(settings: Settings) -> dict[str, str]:
    upgrade(settings.effective_database_url)
    database = create_database(settings.effective_database_url, pool_size=2)
    await database.connect()
    try:
        await register_client(database, TEST_CLIENT, ALL_RIGHTS)
        await add_account(database, "acct-a", patient="pa", email="anna@example.lu")
        await add_account(database, "acct-c", patient="pc", email="carla@example.lu")
        async with database.transaction() as conn:
            await conn.execute(
                "INSERT INTO account_delegation (account_id, patient_id, created_at) VALUES ('acct-c', 'pa', ?)",
                (int(time.time()) - 5,),
            )
        ids: dict[str, str] = {}
        for name, recipient, kind, subject in (
            ("pa-doc", "Patient/pa", "dsp-new-document", None),
            ("pa-emergency", "Patient/pa", "dsp-emergency-access", None),
            ("pb-doc", "Patient/pb", "dsp-new-document", None),
            ("dr1-grant", "Practitioner/dr1", "dsp-access-granted", "Patient/pa"),
        ):
            created = await create_notification(
                database,
                recipient=recipient,
                kind=kind,
                text=f"{kind} for {recipient}",
                key=make_key(kind, recipient, name),
                subject=subject,
            )
            ids[name] = created.id
        return ids
    finally:
        await database.close()


def _tokens(settings: Settings) -> dict[str, str]:
    ring = KeyRing.load_or_create(settings)

    def cli(who: str, scope: str | None = None, **extra: Any) -> str:
        return mint_for(settings, ring, principal(who), scope=scope, extra_claims=extra or None)

    assistant = mint(
        ring,
        issuer=settings.effective_issuer,
        audience=settings.effective_audience,
        subject="acct-c",
        client_id=CLI_CLIENT_ID,
        scope="patient/*.rs",
        ttl=600,
        iua=IuaClaims(
            subject_role=Coding(ROLE_SYSTEM, "assistant"),
            purpose_of_use=(Coding(PURPOSE_SYSTEM, "PATRQT"),),
            person_id="pa",
        ),
        extra_claims={"acct": "acct-c", "fhirUser": "Patient/pc"},
    )
    return {
        "pa": cli("patient:pa"),
        "pb": cli("patient:pb"),
        "assistant": assistant,
        "dr1": cli("professional:2854123452", fhirUser="Practitioner/dr1"),
        "dr2": cli("professional:2854123460", fhirUser="Practitioner/dr2"),
        "all": cli(f"system:{TEST_CLIENT}", ALL_RIGHTS),
    }


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    settings = loopback_settings(var_dir=tmp_path, database_url=db_url)
    ids = asyncio.run(_prepare(settings))
    tokens = _tokens(settings)
    with serve(settings) as base, httpx.Client(timeout=30) as http:
        world = World(base, http, tokens, ids)
        for res_type, res_id in (("Patient", "pa"), ("Patient", "pb"), ("Practitioner", "dr1")):
            body = {"resourceType": res_type, "id": res_id}
            assert http.put(f"{base}/{res_type}/{res_id}", json=body, headers=world.as_("all")).status_code == 201
        yield world


def _ids(bundle: dict[str, Any]) -> set[str]:
    return {e["resource"]["id"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") != "outcome"}


def _outcome(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert words in body["issue"][0]["diagnostics"], body


def test_a_patient_reads_and_searches_only_their_notifications(world: World) -> None:
    ids = world.ids
    mine = world.get("pa", f"Communication/{ids['pa-doc']}")
    assert mine.status_code == 200 and mine.json()["payload"][0]["contentString"].startswith("dsp-new-document")
    unread = world.get("pa", "Communication?recipient=Patient/pa&received:missing=true").json()
    assert _ids(unread) == {ids["pa-doc"], ids["pa-emergency"]} and unread["total"] == 2
    compartment = world.get("pa", "Patient/pa/Communication").json()
    assert _ids(compartment) == {ids["pa-doc"], ids["pa-emergency"], ids["dr1-grant"]}, "the one about them too"
    urgent = world.get("pa", "Communication?category=urn:esante:notification-kind|dsp-emergency-access").json()
    assert _ids(urgent) == {ids["pa-emergency"]}
    _outcome(world.get("pa", f"Communication/{ids['pb-doc']}"), 404, "is not known")
    other = world.get("pa", "Communication?recipient=Patient/pb").json()
    assert other["total"] == 0 and not _ids(other)
    everything = world.get("pa", "Communication").json()
    assert ids["pb-doc"] not in _ids(everything) and everything["total"] == 3
    _outcome(world.get("pb", f"Communication/{ids['pa-doc']}"), 404, "is not known")


def test_marking_read_and_unread(world: World) -> None:
    ids = world.ids
    path = f"Communication/{ids['pa-doc']}"
    read = world.post("pa", f"{path}/$mark-read")
    assert read.status_code == 200, read.text
    first = read.json()["received"]
    assert read.json()["meta"]["versionId"] == "2" and read.headers["etag"] == 'W/"2"'
    again = world.post("pa", f"{path}/$mark-read")
    assert again.json()["received"] == first and again.headers["etag"] == 'W/"2"', "nothing changes"
    unread = world.get("pa", "Communication?recipient=Patient/pa&received:missing=true").json()
    assert _ids(unread) == {ids["pa-emergency"]}
    read_ones = world.get("pa", "Communication?recipient=Patient/pa&received:missing=false").json()
    assert _ids(read_ones) == {ids["pa-doc"]}
    back = world.post("pa", f"{path}/$mark-unread")
    assert back.status_code == 200 and "received" not in back.json() and back.headers["etag"] == 'W/"3"'
    history = world.get("pa", f"{path}/_history").json()
    assert len(history["entry"]) == 3


def test_only_a_recipient_marks_read_and_bad_requests_are_refused(world: World) -> None:
    ids = world.ids
    _outcome(world.post("pb", f"Communication/{ids['pa-doc']}/$mark-read"), 404, "is not known")
    _outcome(world.post("pa", f"Communication/{ids['dr1-grant']}/$mark-read"), 403, "only a recipient")
    _outcome(world.post("pa", "Communication/nope/$mark-read"), 404, "is not known")
    refused = world.http.get(f"{world.base}/Communication/{ids['pa-doc']}/$mark-read", headers=world.as_("pa"))
    _outcome(refused, 405, "POST")
    _outcome(world.post("all", f"Communication/{ids['pa-doc']}/$mark-read"), 403, "only a recipient")
    patch = world.http.patch(
        f"{world.base}/Communication/{ids['pa-doc']}",
        json=[{"op": "add", "path": "/received", "value": "2026-01-01T00:00:00Z"}],
        headers={**world.as_("pa"), "Content-Type": "application/json-patch+json"},
    )
    assert patch.status_code == 403, "a patient has no general write: only the operation changes the read mark"
    other = {
        "resourceType": "Communication",
        "status": "completed",
        "subject": {"reference": "Patient/pa"},
        "recipient": [{"reference": "Patient/pa"}],
    }
    created = world.http.post(f"{world.base}/Communication", json=other, headers=world.as_("all"))
    assert created.status_code == 201
    _outcome(world.post("pa", f"Communication/{created.json()['id']}/$mark-read"), 422, "not an eSanté notification")
    assert "received" not in world.get("pa", f"Communication/{ids['pa-doc']}").json(), "nothing changed"


def test_an_assistant_reads_and_marks_the_patients_notifications(world: World) -> None:
    ids = world.ids
    listed = world.get("assistant", "Communication?recipient=Patient/pa").json()
    assert _ids(listed) == {ids["pa-doc"], ids["pa-emergency"]}
    assert world.post("assistant", f"Communication/{ids['pa-emergency']}/$mark-read").status_code == 200
    _outcome(world.get("assistant", f"Communication/{ids['pb-doc']}"), 404, "is not known")


def test_a_professional_reads_only_the_notifications_addressed_to_them(world: World) -> None:
    ids = world.ids
    mine = world.get("dr1", "Communication?recipient=Practitioner/dr1").json()
    assert _ids(mine) == {ids["dr1-grant"]}
    everything = world.get("dr1", "Communication").json()
    assert _ids(everything) == {ids["dr1-grant"]} and everything["total"] == 1
    _outcome(world.get("dr1", f"Communication/{ids['pa-doc']}"), 404, "is not known")
    marked = world.post("dr1", f"Communication/{ids['dr1-grant']}/$mark-read")
    assert marked.status_code == 200 and "received" in marked.json()
    _outcome(world.get("dr2", f"Communication/{ids['dr1-grant']}"), 404, "is not known")
    assert world.get("dr2", "Communication").json()["total"] == 0


def _choice(parameters: dict[str, Any], name: str, kind: str | None = None) -> Any:
    for parameter in parameters["parameter"]:
        if kind is None and parameter["name"] == name:
            return parameter["valueBoolean"]
        if kind is not None and parameter["name"] == "kind":
            parts = {p["name"]: p for p in parameter["part"]}
            if parts["code"]["valueCode"] == kind:
                return parts[name]["valueBoolean"]
    raise AssertionError(f"{name} {kind} not in {parameters}")


def test_email_preferences(world: World) -> None:
    path = "Patient/pa/$notification-preferences"
    shown = world.get("pa", path)
    assert shown.status_code == 200, shown.text
    assert _choice(shown.json(), "email") is True and _choice(shown.json(), "email-address-on-file") is True
    off = world.post(
        "pa", path, {"resourceType": "Parameters", "parameter": [{"name": "email", "valueBoolean": False}]}
    )
    assert off.status_code == 200 and _choice(off.json(), "email") is False
    assert _choice(off.json(), "email", "dsp-emergency-access") is False
    only_emergency = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "kind",
                "part": [
                    {"name": "code", "valueCode": "dsp-emergency-access"},
                    {"name": "email", "valueBoolean": True},
                ],
            }
        ],
    }
    changed = world.post("pa", path, only_emergency).json()
    assert (
        _choice(changed, "email", "dsp-emergency-access") is True and _choice(changed, "email", "cve-reminder") is False
    )
    assert _choice(changed, "own-choice", "dsp-emergency-access") is True
    assert _choice(world.get("assistant", path).json(), "email") is False, "the assistant may read them"
    _outcome(
        world.post(
            "assistant", path, {"resourceType": "Parameters", "parameter": [{"name": "email", "valueBoolean": True}]}
        ),
        403,
        "assistant",
    )
    _outcome(world.get("pb", path), 404, "is not known")
    refused = world.get("dr1", path)  # 403 (no right on Patient) or 404 (a rule filters the Patients they see)
    assert refused.status_code in (403, 404) and refused.json()["resourceType"] == "OperationOutcome"
    assert world.get("dr1", "Practitioner/dr1/$notification-preferences").status_code == 200
    bad = [
        ({"resourceType": "Parameters", "parameter": [{"name": "email", "valueString": "no"}]}, "valueBoolean"),
        ({"resourceType": "Parameters", "parameter": [{"name": "sms", "valueBoolean": True}]}, "unknown parameter"),
        (
            {
                "resourceType": "Parameters",
                "parameter": [{"name": "kind", "part": [{"name": "code", "valueCode": "x"}]}],
            },
            "naming a kind",
        ),
        ({"resourceType": "Parameters"}, "nothing to change"),
    ]
    for body, words in bad:
        _outcome(world.post("pa", path, body), 400, words)
    final = world.get("pa", path).json()
    assert _choice(final, "email") is False and _choice(final, "email", "dsp-emergency-access") is True, "unchanged"


def test_the_server_delivers_in_the_background(db_url: str, tmp_path: Path) -> None:
    with smtp_server() as mail:
        settings = loopback_settings(
            var_dir=tmp_path,
            database_url=db_url,
            notify_smtp_host=mail.host,
            notify_smtp_port=mail.port,
            notify_smtp_security="none",
            notify_worker_interval=1,
        )
        asyncio.run(_prepare(settings))
        with serve(settings):
            mail.wait_for(2, timeout=15)
            time.sleep(1.5)  # a further run sends nothing more
        recipients = sorted(r.recipients[0] for r in mail.mailbox.messages)
    assert recipients == ["anna@example.lu", "anna@example.lu"], "pa's two notifications; pb and dr1 have no account"


def test_mark_all_read(world: World) -> None:
    ids = world.ids

    def marked(response: httpx.Response) -> int:
        assert response.status_code == 200, response.text
        return int(response.json()["parameter"][0]["valueInteger"])

    assert marked(world.post("pa", "Communication/$mark-read")) == 2
    assert marked(world.post("pa", "Communication/$mark-read")) == 0, "already read"
    assert world.get("pa", "Communication?recipient=Patient/pa&received:missing=true").json()["total"] == 0
    assert "received" not in world.get("all", f"Communication/{ids['pb-doc']}").json(), "another patient's untouched"
    assert "received" not in world.get("all", f"Communication/{ids['dr1-grant']}").json(), "about pa, not to pa"
    assert marked(world.post("dr1", "Communication/$mark-read")) == 1
    _outcome(world.post("all", "Communication/$mark-read"), 403, "has notifications to mark read")
