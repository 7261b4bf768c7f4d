"""The DSP's notices over HTTP on both databases, with a real SMTP server (aiosmtpd on loopback): a new document
filed by ITI-65 (or created by establishment software) gives the patient one stored notification and, once the
server's delivery task ran, one e-mail without health data; an update of that document and a refused or rolled-back
filing give none; a replacement is a new document; the holder's own upload is not notified, an assistant's is; the
opening of a DSP is notified once, in its refusal window, by the sweep (function, command and server task); a
destroyed DSP's notifications are destroyed with it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from esante.cli import app as cli
from esante.dsp.audit import SYSTEM_ACTOR
from esante.dsp.lifecycle_jobs import destroy_due
from esante.dsp.notices_openings import notify_openings
from esante.security.keys import KeyRing
from esante.security.tokens import PURPOSE_SYSTEM, ROLE_SYSTEM, Coding, IuaClaims, mint
from tests.dsp.dsp_support import World, document, dsp_world, parameters, put
from tests.dsp.mhd.support import FHIR_JSON, author_of, located, mhd_world, pdf, submission
from tests.notify.support import SmtpServer, add_account, smtp_server

KIND = "urn:esante:notification-kind"


def mail_settings(server: SmtpServer) -> dict[str, Any]:
    return {
        "notify_smtp_host": server.host,
        "notify_smtp_port": server.port,
        "notify_smtp_security": "none",
        "notify_worker_interval": 1,
    }


async def notices(http: httpx.AsyncClient, fhir: str, headers: dict[str, str], patient: str, kind: str) -> list[Any]:
    response = await http.get(
        f"{fhir}/Communication",
        params={"recipient": f"Patient/{patient}", "category": f"{KIND}|{kind}"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json().get("entry", [])]


async def outbox(database: Any, kind: str) -> list[tuple[Any, ...]]:
    async with database.read() as conn:
        return [
            tuple(r) for r in await conn.fetch("SELECT recipient, status FROM notify_outbox WHERE kind = ?", (kind,))
        ]


async def mails(server: SmtpServer, count: int, timeout: float = 15) -> list[Any]:
    for _ in range(int(timeout * 20)):
        if len(server.mailbox.messages) >= count:
            break
        await asyncio.sleep(0.05)
    return list(server.mailbox.messages)


async def test_a_filing_notifies_once_and_emails(db_url: str, tmp_path: Path) -> None:
    with smtp_server() as server:
        async with mhd_world(db_url, tmp_path, **mail_settings(server)) as world, httpx.AsyncClient(timeout=60) as http:
            lea, marc = world.patients["lea"], world.patients["marc"]
            await add_account(world.database, "acct-lea", patient=lea, email="lea@example.org")
            system = {**world.system(), **FHIR_JSON}
            filed = await http.post(
                world.fhir, json=submission({"reference": f"Patient/{lea}"}, [pdf("one")]), headers=system
            )
            assert filed.status_code == 200, filed.text
            (doc_id,) = located(filed.json(), "DocumentReference")
            (note,) = await notices(http, world.fhir, world.patient(lea), lea, "dsp-new-document")
            assert note["about"] == [{"reference": f"DocumentReference/{doc_id}"}]
            assert note["payload"][0]["contentString"] == (
                "A new document was added to your shared care record (DSP): Consultation report."
            )
            (received,) = await mails(server, 1)
            assert received.recipients == ["lea@example.org"]
            assert "New document in your DSP" in str(received.message["Subject"])
            body = received.message.get_body(preferencelist=("plain",))
            assert body is not None and "Consultation" not in body.get_content()  # no health data by e-mail

            # the same document updated (a correction by the establishment): no second notification
            current = (await http.get(f"{world.fhir}/DocumentReference/{doc_id}", headers=world.patient(lea))).json()
            current["description"] = "corrected title"
            updated = await http.put(f"{world.fhir}/DocumentReference/{doc_id}", json=current, headers=system)
            assert updated.status_code == 200, updated.text
            # a replacement is a new document: one notification for it, none for the superseded one
            relation = [{"code": "replaces", "target": {"reference": f"DocumentReference/{doc_id}"}}]
            bundle = submission({"reference": f"Patient/{lea}"}, [pdf("two")], relates_to=relation)
            replaced = await http.post(world.fhir, json=bundle, headers=system)
            assert replaced.status_code == 200, replaced.text
            (new_id,) = located(replaced.json(), "DocumentReference")
            found = await notices(http, world.fhir, world.patient(lea), lea, "dsp-new-document")
            assert sorted(n["about"][0]["reference"] for n in found) == sorted(
                [f"DocumentReference/{doc_id}", f"DocumentReference/{new_id}"]
            )
            assert len(await mails(server, 2)) == 2

            # a filing refused inside its transaction (a physician without any grant) leaves no notification
            doctor = {**world.professional("dr-demo"), **FHIR_JSON}
            refused = await http.post(
                world.fhir, json=submission({"reference": f"Patient/{marc}"}, [pdf("x")], author=author_of("dr-demo")),
                headers=doctor,
            )  # fmt: skip
            assert refused.status_code in (403, 404), refused.text
            # a transaction whose DocumentReference is written, then rolled back by a later entry's failure
            new_document = document("ignored", marc, "consultation-report")
            del new_document["id"]
            rolled_back = {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {"resource": new_document, "request": {"method": "POST", "url": "DocumentReference"}},
                    {
                        "resource": {"resourceType": "Patient", "id": marc},
                        "request": {"method": "PUT", "url": f"Patient/{marc}", "ifMatch": 'W/"99"'},
                    },
                ],
            }
            failed = await http.post(world.fhir, json=rolled_back, headers=system)
            assert failed.status_code in (409, 412), failed.text
            assert await notices(http, world.fhir, world.patient(marc), marc, "dsp-new-document") == []
            assert [r[0] for r in await outbox(world.database, "dsp-new-document")] == [f"Patient/{lea}"] * 2


def _uploader(world: World, account: str, assistant: str, holder: str) -> dict[str, str]:
    """An assistant's token that may create documents (the personal area) for the holder."""
    ring = KeyRing.load_or_create(world.settings)
    value = mint(
        ring,
        issuer=world.settings.effective_issuer,
        audience=world.settings.effective_audience,
        subject=account,
        client_id="esante-cli",
        scope="patient/*.rs patient/DocumentReference.c",
        ttl=600,
        iua=IuaClaims(
            subject_role=Coding(ROLE_SYSTEM, "assistant"),
            purpose_of_use=(Coding(PURPOSE_SYSTEM, "PATRQT"),),
            person_id=holder,
        ),
        extra_claims={"acct": account, "fhirUser": f"Patient/{assistant}"},
    )
    return world.headers(value)


async def test_uploads_the_holders_own_and_an_assistants(db_url: str, tmp_path: Path) -> None:
    async with (
        dsp_world(db_url, tmp_path, dsp_opening_notice_interval=0) as world,
        httpx.AsyncClient(timeout=30) as http,
    ):
        anna = await world.certified("anna", 1)
        await world.certified("dora", 2)
        await world.certified("emil", 3)  # a patient outside the DSP's shape: no record
        await world.execute("DELETE FROM dsp_record WHERE patient_id = 'emil'")
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
        mine = document("p1", anna, "patient-provided")
        del mine["id"]
        own = await http.post(
            f"{world.fhir}/DocumentReference",
            json=mine,
            headers=world.patient(anna, "patient/*.rs patient/DocumentReference.c"),
        )
        assert own.status_code == 201, own.text
        assert await notices(http, world.fhir, world.patient(anna), anna, "dsp-new-document") == []
        by_assistant = await http.post(
            f"{world.fhir}/DocumentReference", json=mine, headers=_uploader(world, "acct-dora", "dora", anna)
        )
        assert by_assistant.status_code == 201, by_assistant.text
        (note,) = await notices(http, world.fhir, world.patient(anna), anna, "dsp-new-document")
        assert note["about"] == [{"reference": f"DocumentReference/{by_assistant.json()['id']}"}]
        assert "Patient-provided document" in note["payload"][0]["contentString"]
        # a document of a patient without a DSP is the platform's generic store: no DSP notification
        await put(http, world, document("generic", "emil", "consultation-report"))
        assert [r[0] for r in await outbox(world.database, "dsp-new-document")] == [f"Patient/{anna}"]


async def test_the_opening_is_notified_once_in_its_refusal_window(db_url: str, tmp_path: Path) -> None:
    with smtp_server() as server:
        settings = {**mail_settings(server), "dsp_opening_notice_interval": 0}
        async with dsp_world(db_url, tmp_path, **settings) as world, httpx.AsyncClient(timeout=30) as http:
            for n, name in enumerate(("anna", "bert", "cleo", "dan"), start=1):
                await world.certified(name, n, active_dsp=False)  # pending: the refusal window runs
            await add_account(world.database, "acct-anna", patient="anna", email="anna@example.org")
            await world.lifecycle("bert", "refuse")  # acted already: no notice
            await world.lifecycle("cleo", "activate")
            done = await notify_openings(world.database, world.store, world.context, batch=1)
            assert (done.notified, done.already) == (2, 0)  # anna and dan, one per transaction
            (note,) = await notices(http, world.fhir, world.patient("anna"), "anna", "dsp-opened")
            text = note["payload"][0]["contentString"]
            assert "Until 20" in text and "refuse" in text
            assert note["recipient"] == [{"reference": "Patient/anna"}] and note["priority"] == "routine"
            assert await notices(http, world.fhir, world.patient("bert"), "bert", "dsp-opened") == []
            assert await notices(http, world.fhir, world.patient("cleo"), "cleo", "dsp-opened") == []
            # never twice: the sweep again, and the command, find nothing left
            again = await notify_openings(world.database, world.store, world.context)
            assert (again.notified, again.already) == (0, 0)
            runner = CliRunner()
            result = await asyncio.to_thread(
                runner.invoke,
                cli,
                ["dsp", "notify-openings", "--db", db_url],
                env={"ESANTE_VAR_DIR": str(tmp_path)},
            )
            assert result.exit_code == 0, result.output
            assert "0 people notified" in result.output
            (received,) = await mails(server, 1)
            assert received.recipients == ["anna@example.org"]
            assert "DSP" in str(received.message["Subject"]) and "ouvert" in str(received.message["Subject"])
            # a DSP whose window is over is open: no notice any more
            await world.certified("eve", 5, active_dsp=False)
            world.clock.advance(31 * 86400)
            late = await notify_openings(world.database, world.store, world.context)
            assert late.notified == 0


async def test_the_command_and_the_servers_sweep(db_url: str, tmp_path: Path) -> None:
    async with dsp_world(db_url, tmp_path, dsp_opening_notice_interval=0) as world:
        await world.certified("anna", 1, active_dsp=False)
        await world.certified("bert", 2, active_dsp=False)
        runner = CliRunner()
        result = await asyncio.to_thread(
            runner.invoke,
            cli,
            ["dsp", "notify-openings", "--db", db_url, "--limit", "1"],
            env={"ESANTE_VAR_DIR": str(tmp_path)},
        )
        assert result.exit_code == 0, result.output
        assert "1 people notified" in result.output
    async with dsp_world(db_url, tmp_path / "second", dsp_opening_notice_interval=1) as world:
        for _ in range(200):
            if len(await outbox(world.database, "dsp-opened")) == 2:
                break
            await asyncio.sleep(0.05)
        assert sorted(r[0] for r in await outbox(world.database, "dsp-opened")) == ["Patient/anna", "Patient/bert"]
        await world.certified("cleo", 3, active_dsp=False)
        for _ in range(200):
            if len(await outbox(world.database, "dsp-opened")) == 3:
                break
            await asyncio.sleep(0.05)
        assert len(await outbox(world.database, "dsp-opened")) == 3


async def test_a_destroyed_dsp_takes_its_notifications_with_it(db_url: str, tmp_path: Path) -> None:
    async with (
        dsp_world(db_url, tmp_path, dsp_opening_notice_interval=0) as world,
        httpx.AsyncClient(timeout=30) as http,
    ):
        anna = await world.certified("anna", 1)
        ben = await world.certified("ben", 2)
        await put(http, world, document("d1", anna, "laboratory-results"))
        await put(http, world, document("k1", ben, "laboratory-results"))
        assert len(await outbox(world.database, "dsp-new-document")) == 2
        await world.lifecycle(anna, "close")
        world.clock.advance(11 * 366 * 86400)
        result = await destroy_due(world.store, world.context, SYSTEM_ACTOR)
        (done,) = result.destroyed
        assert done.counts["notifications"] == 1
        assert await outbox(world.database, "dsp-new-document") == [(f"Patient/{ben}", "pending")]
        left = await world.sql(
            "SELECT r.res_id FROM resource r JOIN idx_reference s ON s.rid = r.rid AND s.param = 'subject'"
            " WHERE r.res_type = 'Communication' AND s.target_id = ?",
            anna,
        )
        assert left == []
        assert len(await notices(http, world.fhir, world.patient(ben), ben, "dsp-new-document")) == 1
