"""ITI-65 is all or nothing, blobs included, and a replacement supersedes the document it replaces in the same
transaction. Over HTTP, on both databases."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from esante.dsp.audit import SYSTEM_ACTOR
from esante.dsp.context import dsp_context
from esante.dsp.lifecycle import change, destroy_dsp
from tests.dsp.mhd.support import FHIR_JSON, World, located, mhd_world, pdf, submission, xds_code


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> Any:
    async with mhd_world(db_url, tmp_path) as built:
        yield built


async def post(world: World, bundle: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=60) as http:
        return await http.post(world.fhir, json=bundle, headers={**world.system(), **FHIR_JSON})


def blobs_on_disk(world: World) -> list[str]:
    objects = world.blob_dir() / "objects"
    return sorted(p.name for p in objects.glob("*/*/*")) if objects.exists() else []


async def documents(world: World) -> list[tuple[Any, ...]]:
    return await world.rows(
        "SELECT res_id, version_id FROM resource WHERE res_type = 'DocumentReference' AND is_current ORDER BY res_id"
    )


def lea(world: World) -> dict[str, str]:
    return {"reference": f"Patient/{world.patients['lea']}"}


async def test_a_failure_after_the_documents_were_stored_leaves_no_blob(world: World) -> None:
    """The second DocumentReference fails FHIR validation inside the transaction, after both documents went to
    the blob store: the answer names it, and neither resources nor blobs nor links remain."""
    bundle = submission(lea(world), [pdf("first", 3000), pdf("second", 4000)])
    second = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference"][1]
    second["resource"]["date"] = "the second of March"
    response = await post(world, bundle)
    assert response.status_code == 400, response.text
    assert "Bundle.entry[3]" in response.json()["issue"][0]["diagnostics"]
    assert (
        await world.rows("SELECT res_type FROM resource WHERE res_type IN ('DocumentReference', 'List', 'Binary')")
        == []
    )
    assert await world.rows("SELECT binary_id FROM dsp_document_blob") == []
    assert blobs_on_disk(world) == []


async def test_a_refused_submission_keeps_the_blob_a_stored_document_uses(world: World) -> None:
    """The same bytes, already filed (same blob), sent again in a failing submission: the blob stays."""
    document = pdf("kept", 2500)
    assert (await post(world, submission(lea(world), [document]))).status_code == 200
    assert len(blobs_on_disk(world)) == 1
    failing = submission(lea(world), [document])
    next(e for e in failing["entry"] if e["resource"]["resourceType"] == "DocumentReference")["resource"]["date"] = "x"
    assert (await post(world, failing)).status_code == 400
    assert len(blobs_on_disk(world)) == 1
    (binary_id,) = (await world.rows("SELECT binary_id FROM dsp_document_blob"))[0]
    async with httpx.AsyncClient(timeout=30) as http:
        raw = await http.get(f"{world.fhir}/Binary/{binary_id}", headers=world.patient(world.patients["lea"]))
    assert raw.status_code == 200 and raw.content == document


async def test_concurrent_submissions_of_one_unique_id(world: World) -> None:
    """Four submissions of the same document (same uniqueId, same bytes) at once: one is registered, the others
    are refused as duplicates, and the one blob they shared survives the refusals' undo."""
    document = pdf("raced", 20_000)
    bundles = [submission(lea(world), [document], unique_ids=["urn:oid:2.25.424242"]) for _ in range(4)]
    responses = await asyncio.gather(*(post(world, b) for b in bundles))
    statuses = sorted(r.status_code for r in responses)
    assert statuses[0] == 200 and statuses.count(200) == 1, [r.text for r in responses]
    for response in responses:
        if response.status_code != 200:
            assert response.status_code in (409, 422), response.text
            if response.status_code == 422:
                assert xds_code(response.json()) == "XDSDuplicateUniqueIdInRegistry"
    assert len(await documents(world)) == 1
    assert len(blobs_on_disk(world)) == 1
    (binary_id,) = (await world.rows("SELECT binary_id FROM dsp_document_blob"))[0]
    async with httpx.AsyncClient(timeout=30) as http:
        raw = await http.get(f"{world.fhir}/Binary/{binary_id}", headers=world.patient(world.patients["lea"]))
    assert raw.content == document


async def test_replacement_supersedes_the_replaced_document(world: World) -> None:
    first = await post(world, submission(lea(world), [pdf("v1")]))
    (old_id,) = located(first.json(), "DocumentReference")
    old_binary = located(first.json(), "Binary")[0]
    relation = [{"code": "replaces", "target": {"reference": f"DocumentReference/{old_id}"}}]
    second = await post(world, submission(lea(world), [pdf("v2")], relates_to=relation))
    assert second.status_code == 200, second.text
    (new_id,) = located(second.json(), "DocumentReference")
    as_lea = world.patient(world.patients["lea"])
    async with httpx.AsyncClient(timeout=30) as http:
        old = (await http.get(f"{world.fhir}/DocumentReference/{old_id}", headers=as_lea)).json()
        assert old["status"] == "superseded" and old["meta"]["versionId"] == "2"
        current = await http.get(
            f"{world.fhir}/DocumentReference",
            params={"patient": f"Patient/{world.patients['lea']}", "status": "current"},
            headers=as_lea,
        )
        assert [e["resource"]["id"] for e in current.json()["entry"]] == [new_id]
        gone = await http.get(f"{world.fhir}/Binary/{old_binary}", headers=as_lea)
        assert gone.status_code == 410  # ITI-68: a deprecated document is gone
        # the replaced one cannot be replaced again
        again = await post(world, submission(lea(world), [pdf("v3")], relates_to=relation))
        assert again.status_code == 422 and xds_code(again.json()) == "XDSRegistryDeprecatedDocumentError"


async def test_replacing_another_patients_or_an_unknown_document(world: World) -> None:
    first = await post(world, submission(lea(world), [pdf("lea's")]))
    (leas,) = located(first.json(), "DocumentReference")
    marc = {"reference": f"Patient/{world.patients['marc']}"}
    relation = [{"code": "replaces", "target": {"reference": f"DocumentReference/{leas}"}}]
    response = await post(world, submission(marc, [pdf("marc's")], relates_to=relation))
    assert response.status_code == 422 and xds_code(response.json()) == "XDSPatientIdDoesNotMatch"
    unknown = [{"code": "replaces", "target": {"reference": "DocumentReference/nope"}}]
    response = await post(world, submission(lea(world), [pdf("x")], relates_to=unknown))
    assert response.status_code == 400 and xds_code(response.json()) == "XDSRegistryMetadataError"
    rows = await world.rows("SELECT res_id FROM resource WHERE res_type = 'DocumentReference' AND is_current")
    assert [r[0] for r in rows] == [leas]
    status = await world.rows(
        "SELECT content FROM resource WHERE res_type = 'DocumentReference' AND res_id = ? AND is_current", (leas,)
    )
    assert b'"status":"current"' in bytes(status[0][0])


async def test_several_documents_in_one_submission(world: World) -> None:
    response = await post(world, submission(lea(world), [pdf(f"doc {i}", 1000 + i) for i in range(5)]))
    assert response.status_code == 200, response.text
    assert len(located(response.json(), "DocumentReference")) == 5
    assert len(located(response.json(), "Binary")) == 5
    assert len(await world.rows("SELECT 1 FROM dsp_document_blob")) == 5
    assert len(blobs_on_disk(world)) == 5


async def test_a_destroyed_dsp_loses_its_blobs(world: World) -> None:
    """At the end of the retention period the DSP core destroys the record; its documents' blobs go with it
    (crypto-shredded), except those another DSP's document also holds."""
    shared = pdf("also filed for Marc", 3000)
    lea_doc = await post(world, submission(lea(world), [pdf("only Léa's", 2000), shared]))
    assert lea_doc.status_code == 200, lea_doc.text
    marc = {"reference": f"Patient/{world.patients['marc']}"}
    assert (await post(world, submission(marc, [shared]))).status_code == 200
    assert len(blobs_on_disk(world)) == 2
    context = dsp_context(world.platform)
    patient_id = world.patients["lea"]
    async with world.database.transaction() as conn:
        await change(world.platform.store.session(conn), context, patient_id, "close", SYSTEM_ACTOR, "test")
    context.clock = lambda: time.time() + 11 * 366 * 86400
    try:
        async with world.database.transaction() as conn:
            session = world.platform.store.session(conn)
            destruction = await destroy_dsp(session, context, patient_id)
            await session.flush()
    finally:
        context.clock = time.time
    assert destruction.counts["document-blobs"] == 1
    assert len(blobs_on_disk(world)) == 1  # Marc's document keeps the shared bytes
    assert await world.rows("SELECT 1 FROM dsp_document_blob WHERE patient_id = ?", (patient_id,)) == []
    (binary_id,) = (await world.rows("SELECT binary_id FROM dsp_document_blob"))[0]
    async with httpx.AsyncClient(timeout=30) as http:
        raw = await http.get(f"{world.fhir}/Binary/{binary_id}", headers=world.patient(world.patients["marc"]))
    assert raw.status_code == 200 and raw.content == shared
