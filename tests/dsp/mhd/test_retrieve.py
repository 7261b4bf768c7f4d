"""ITI-68 Retrieve Document over HTTP: the document's bytes streamed from the blob store, Accept negotiation, HEAD,
404/410, the policy (another patient sees nothing, no token is a 401) and the audit trail."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from esante.blobs import AsyncBlobStore
from tests.dsp.mhd.support import FHIR_JSON, World, located, mhd_world, pdf, submission


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> Any:
    async with mhd_world(db_url, tmp_path) as built:
        yield built


DOCUMENT = pdf("retrieve me", 300_000)  # several of the blob store's 64 KiB segments


async def filed(world: World, data: bytes = DOCUMENT, **options: Any) -> tuple[str, str]:
    """(DocumentReference id, Binary id) of a document filed for Léa."""
    bundle = submission({"reference": f"Patient/{world.patients['lea']}"}, [data], **options)
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.post(world.fhir, json=bundle, headers={**world.system(), **FHIR_JSON})
    assert response.status_code == 200, response.text
    body = response.json()
    return located(body, "DocumentReference")[0], located(body, "Binary")[0]


def lea(world: World) -> dict[str, str]:
    return world.patient(world.patients["lea"])


@pytest.mark.parametrize(
    "accept", [None, "*/*", "application/pdf", "application/*", "application/pdf;q=0.9, */*;q=0.1"]
)
async def test_the_document_itself(world: World, accept: str | None) -> None:
    _document, binary = await filed(world)
    headers = lea(world) if accept is None else {**lea(world), "Accept": accept}
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.get(f"{world.fhir}/Binary/{binary}", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-length"] == str(len(DOCUMENT))
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["etag"] == 'W/"1"'
    assert response.content == DOCUMENT


@pytest.mark.parametrize("accept", ["application/fhir+json", "application/json", "application/fhir+json, */*;q=0.8"])
async def test_the_binary_resource_when_fhir_json_is_asked_for(world: World, accept: str) -> None:
    document, binary = await filed(world, pdf("small", 5000))
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.get(f"{world.fhir}/Binary/{binary}", headers={**lea(world), "Accept": accept})
        by_format = await http.get(f"{world.fhir}/Binary/{binary}", params={"_format": "json"}, headers=lea(world))
    for answer in (response, by_format):
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("application/fhir+json")
        resource = answer.json()
        assert resource["resourceType"] == "Binary" and resource["contentType"] == "application/pdf"
        assert resource["securityContext"] == {"reference": f"DocumentReference/{document}"}
        assert base64.b64decode(resource["data"]) == pdf("small", 5000)


@pytest.mark.parametrize("accept", ["text/html", "application/pdf;q=0", "image/*", "application/fhir+xml"])
async def test_not_acceptable(world: World, accept: str) -> None:
    _document, binary = await filed(world)
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.get(f"{world.fhir}/Binary/{binary}", headers={**lea(world), "Accept": accept})
    assert response.status_code == 406, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_head(world: World) -> None:
    _document, binary = await filed(world)
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.head(f"{world.fhir}/Binary/{binary}", headers={**lea(world), "Accept": "*/*"})
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(DOCUMENT))
    assert response.content == b""


async def test_not_found_forbidden_and_unauthenticated(world: World) -> None:
    _document, binary = await filed(world)
    async with httpx.AsyncClient(timeout=60) as http:
        unknown = await http.get(f"{world.fhir}/Binary/does-not-exist", headers=lea(world))
        assert unknown.status_code == 404 and unknown.json()["resourceType"] == "OperationOutcome"
        marc = await http.get(f"{world.fhir}/Binary/{binary}", headers=world.patient(world.patients["marc"]))
        assert marc.status_code == 404  # another patient's document does not exist for Marc
        anonymous = await http.get(f"{world.fhir}/Binary/{binary}")
        assert anonymous.status_code == 401


async def test_gone_when_its_blob_was_destroyed(world: World) -> None:
    _document, binary = await filed(world)
    (address,) = (await world.rows("SELECT address FROM dsp_document_blob WHERE binary_id = ?", (binary,)))[0]
    await AsyncBlobStore.from_settings(world.settings).delete(address)
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.get(f"{world.fhir}/Binary/{binary}", headers=lea(world))
    assert response.status_code == 410, response.text
    assert "destroyed" in response.json()["issue"][0]["diagnostics"]


async def test_gone_when_its_document_was_deleted_or_entered_in_error(db_url: str, tmp_path: Path) -> None:
    """A reader who may still read the Binary (here an establishment allowed to read DSP documents) gets 410 once
    its DocumentReference is deleted or entered in error; the patient, whom the policy no longer shows such a
    document, gets 404 (ITI-68 allows it where 410 would tell too much)."""
    async with mhd_world(db_url, tmp_path, dsp_establishment_reads=True) as world:
        document, binary = await filed(world)
        other_document, other_binary = await filed(world, pdf("other", 4000))
        async with world.database.transaction() as conn:  # the DSP's own writer (the API may not delete them)
            session = world.platform.store.session(conn)
            current = await session.read("DocumentReference", document)
            assert current is not None
            await session.delete(current)
            other = await session.read("DocumentReference", other_document)
            assert other is not None and other.content is not None
            await session.update({**orjson.loads(other.content), "status": "entered-in-error"}, other)
            await session.flush()
        system = {**world.system(), "Accept": "*/*"}
        async with httpx.AsyncClient(timeout=60) as http:
            deleted = await http.get(f"{world.fhir}/Binary/{binary}", headers=system)
            in_error = await http.get(f"{world.fhir}/Binary/{other_binary}", headers=system)
            as_patient = await http.get(f"{world.fhir}/Binary/{binary}", headers=lea(world))
        assert deleted.status_code == 410, deleted.text
        assert in_error.status_code == 410, in_error.text
        assert as_patient.status_code in (404, 410), as_patient.text


async def test_plain_text_documents_keep_their_type(world: World) -> None:
    text = "Compte rendu: tout va bien. Ça marche.".encode()
    _document, binary = await filed(world, text, content_type="text/plain; charset=utf-8")
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.get(f"{world.fhir}/Binary/{binary}", headers={**lea(world), "Accept": "text/plain"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.content == text


async def test_a_retrieval_is_audited_with_its_patient(world: World) -> None:
    document, binary = await filed(world)
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.get(
            f"{world.fhir}/Binary/{binary}", headers={**lea(world), "X-Request-Id": "iti68-audit-1"}
        )
        assert response.status_code == 200
        events = await http.get(
            f"{world.fhir}/AuditEvent",
            params={"patient": f"Patient/{world.patients['lea']}", "_count": "100"},
            headers=lea(world),
        )
    assert events.status_code == 200, events.text
    mine = [
        e["resource"]
        for e in events.json().get("entry", [])
        if any(
            (entity.get("what") or {}).get("identifier", {}).get("value") == "iti68-audit-1"
            for entity in e["resource"].get("entity", [])
        )
    ]
    assert mine, "the retrieval left an AuditEvent naming the patient"
    names = {(entity.get("what") or {}).get("reference") for entity in mine[0].get("entity", [])}
    assert f"DocumentReference/{document}" in names  # the document whose content was read


async def test_a_document_binary_is_immutable(db_url: str, tmp_path: Path) -> None:
    async with mhd_world(db_url, tmp_path, dsp_establishment_reads=True) as world:
        _document, binary = await filed(world)
        async with httpx.AsyncClient(timeout=60) as http:
            current = (
                await http.get(
                    f"{world.fhir}/Binary/{binary}", headers={**world.system(), "Accept": "application/fhir+json"}
                )
            ).json()
            forged = base64.b64encode(pdf("forged")).decode()
            rewritten = {"resourceType": "Binary", "id": binary, "contentType": "application/pdf",
                         "securityContext": current["securityContext"], "data": forged}  # fmt: skip
            response = await http.put(
                f"{world.fhir}/Binary/{binary}", json=rewritten, headers={**world.system(), **FHIR_JSON}
            )
            assert response.status_code == 422, response.text
            again = await http.get(f"{world.fhir}/Binary/{binary}", headers=lea(world))
        assert again.content == DOCUMENT


async def test_a_blob_that_fails_its_integrity_check_is_not_served(world: World) -> None:
    _document, binary = await filed(world)
    (address,) = (await world.rows("SELECT address FROM dsp_document_blob WHERE binary_id = ?", (binary,)))[0]
    (data_object,) = [p for p in (world.blob_dir() / "objects").glob(f"*/*/{address}/*") if p.stat().st_size > 1000]
    data_object.write_bytes(data_object.read_bytes()[:-100])  # truncated on disk
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.get(f"{world.fhir}/Binary/{binary}", headers=lea(world))
    assert response.status_code == 500
    assert response.json()["resourceType"] == "OperationOutcome"
