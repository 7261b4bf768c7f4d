"""The MHD flow as a professional under the DSP's access rule (the rule itself is tested by the DSP core): with a
therapeutic relationship declared, a physician files a document (ITI-65), finds it (ITI-67) and retrieves it
(ITI-68); without one, the submission is refused by the policy inside its transaction and nothing stays — no
resource, no link, no blob."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.dsp.mhd.support import FHIR_JSON, author_of, located, mhd_world, pdf, submission

DOCUMENT = pdf("cardiology letter", 40_000)


async def test_a_physician_files_finds_and_retrieves(db_url: str, tmp_path: Path) -> None:
    async with mhd_world(db_url, tmp_path) as world, httpx.AsyncClient(timeout=60) as http:
        lea = world.patients["lea"]
        doctor = {**world.professional("dr-demo"), **FHIR_JSON}
        bundle = submission({"reference": f"Patient/{lea}"}, [DOCUMENT], author=author_of("dr-demo"))
        refused = await http.post(world.fhir, json=bundle, headers=doctor)
        assert refused.status_code in (403, 404), refused.text
        assert await world.rows("SELECT 1 FROM resource WHERE res_type IN ('DocumentReference', 'Binary')") == []
        assert await world.rows("SELECT 1 FROM dsp_document_blob") == []
        objects = world.blob_dir() / "objects"
        assert not objects.exists() or list(objects.glob("*/*/*")) == []
        declared = await http.post(
            f"{world.fhir}/Patient/{lea}/$dsp-relationship",
            json={"resourceType": "Parameters"},
            headers=doctor,
        )
        assert declared.status_code in (200, 201), declared.text
        filed = await http.post(world.fhir, json=bundle, headers=doctor)
        assert filed.status_code == 200, filed.text
        (document_id,) = located(filed.json(), "DocumentReference")
        (binary_id,) = located(filed.json(), "Binary")
        found = await http.get(
            f"{world.fhir}/DocumentReference", params={"patient": f"Patient/{lea}", "status": "current"}, headers=doctor
        )
        assert [e["resource"]["id"] for e in found.json()["entry"]] == [document_id]
        content = await http.get(f"{world.fhir}/Binary/{binary_id}", headers={**doctor, "Accept": "application/pdf"})
        assert content.status_code == 200 and content.content == DOCUMENT
        # another physician, with no grant, sees neither the document nor its content
        other = world.professional("ex-practitioner")
        assert (await http.get(f"{world.fhir}/Binary/{binary_id}", headers=other)).status_code in (403, 404)
        hidden = await http.get(f"{world.fhir}/DocumentReference", params={"patient": f"Patient/{lea}"}, headers=other)
        assert hidden.status_code == 403 or hidden.json().get("entry", []) == []
