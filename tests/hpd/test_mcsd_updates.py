"""IHE mCSD ITI-91 Request Care Services Updates over real HTTP, on SQLite and PostgreSQL: ``_history`` with
``_since`` at type and system level returns every create, update and delete after the instant, pages through
them without loss, and refuses bad parameters with an OperationOutcome naming them."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from tests.auth import token
from tests.hpd.mcsd_support import Directory, directory_server


def _walk(d: Directory, url: str, **kwargs: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every entry of a history, following ``next`` links; also the pages."""
    entries: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url:
        response = d.http.get(next_url, **kwargs)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        entries += page.get("entry", [])
        next_url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
        assert len(pages) < 50, "the paging does not end"
    return entries, pages


def _summary(entries: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["fullUrl"].rsplit("/", 2)[-2] + "/" + e["fullUrl"].rsplit("/", 1)[-1], e["request"]["method"],
             e["response"]["status"]) for e in entries]  # fmt: skip


def _problem(response: httpx.Response, status: int, word: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert word in body["issue"][0]["diagnostics"] or word in body["issue"][0].get("expression", []), body


def test_iti91_updates_since(db_url: str, tmp_path: Path) -> None:
    with directory_server(db_url, tmp_path) as d:
        before = d.bundle("Practitioner/_history?_count=100")
        assert before["total"] == 4 and {e["request"]["method"] for e in before["entry"]} == {"PUT"}
        since = before["meta"]["lastUpdated"]  # the instant the server read: a consumer's next _since
        assert since >= max(e["response"]["lastModified"] for e in before["entry"])

        # changes after the instant: a new professional, a renamed one, a withdrawn one deleted, a location
        created = d.http.post(
            f"{d.base}/Practitioner", json={"resourceType": "Practitioner", "name": [{"family": "Hoffmann"}]}
        )
        assert created.status_code == 201
        new_id = created.json()["id"]
        schmit = d.http.get(f"{d.base}/Practitioner/schmit").json()
        schmit["name"][0]["family"] = "Schmit-Weber"
        assert d.http.put(f"{d.base}/Practitioner/schmit", json=schmit).status_code == 200
        assert d.http.delete(f"{d.base}/Practitioner/wagner").status_code in (200, 204)
        location = d.http.get(f"{d.base}/Location/loc-esch").json()
        location["status"] = "suspended"
        assert d.http.put(f"{d.base}/Location/loc-esch", json=location).status_code == 200
        assert d.http.delete(f"{d.base}/Endpoint/ep-labo").status_code in (200, 204)

        url = f"{d.base}/Practitioner/_history?_since={quote(since)}"
        updates = d.bundle(url)
        assert updates["type"] == "history" and updates["total"] == 3
        assert _summary(updates["entry"]) == [  # newest first
            ("Practitioner/wagner", "DELETE", "410 Gone"),
            ("Practitioner/schmit", "PUT", "200 OK"),
            (f"Practitioner/{new_id}", "POST", "201 Created"),
        ]
        deletion, update, creation = updates["entry"]
        assert "resource" not in deletion and deletion["request"]["url"] == "Practitioner/wagner"
        assert deletion["response"]["etag"] == 'W/"2"'
        assert update["resource"]["name"][0]["family"] == "Schmit-Weber" and update["response"]["etag"] == 'W/"2"'
        assert creation["request"]["url"] == "Practitioner" and creation["resource"]["meta"]["versionId"] == "1"
        assert all(e["response"]["lastModified"] >= since for e in updates["entry"])

        # one entry a page: the walk sees each version once and ends
        paged, pages = _walk(d, f"{url}&_count=1")
        assert _summary(paged) == _summary(updates["entry"]) and len(pages) == 3
        assert all("_since=" in link["url"] for page in pages for link in page["link"])

        # the whole directory in one feed (system level, _type), AuditEvents of these requests left out
        types = "Practitioner,PractitionerRole,Organization,Location,HealthcareService,Endpoint,OrganizationAffiliation"
        feed, _pages = _walk(d, f"{d.base}/_history?_since={quote(since)}&_type={types}&_count=2")
        assert sorted(_summary(feed)) == sorted(
            [
                *_summary(updates["entry"]),
                ("Location/loc-esch", "PUT", "200 OK"),
                ("Endpoint/ep-labo", "DELETE", "410 Gone"),
            ]
        )
        location_only = d.bundle(f"_history?_since={quote(since)}&_type=Location")
        assert _summary(location_only["entry"]) == [("Location/loc-esch", "PUT", "200 OK")]

        # a consumer that resumes from the newest answer gets nothing twice but the overlap it asks for
        resume = updates["meta"]["lastUpdated"]
        assert d.bundle(f"Practitioner/_history?_since={quote(resume)}").get("entry", []) == []
        assert d.bundle("Practitioner/_history?_since=2999-01-01")["total"] == 0
        counted = d.bundle(f"Practitioner/_history?_since={quote(since)}&_count=0")
        assert counted["total"] == 3 and not counted.get("entry")
        assert {link["relation"] for link in counted["link"]} == {"self"}

        # a patient's app may synchronise the directory too (directory types only)
        patient = {"Authorization": f"Bearer {token(d.settings, 'patient:p1')}"}
        theirs = d.http.get(f"{d.base}/PractitionerRole/_history?_since={quote(since)}", headers=patient)
        assert theirs.status_code == 200 and theirs.json()["total"] == 0


def test_iti91_bad_inputs(db_url: str, tmp_path: Path) -> None:
    with directory_server(db_url, tmp_path, load=False) as d:
        _problem(d.http.get(f"{d.base}/Practitioner/_history?_since=yesterday"), 400, "_since")
        _problem(d.http.get(f"{d.base}/Practitioner/_history?_since=2024-02-30"), 400, "_since")
        _problem(d.http.get(f"{d.base}/Practitioner/_history?_count=ten"), 400, "_count")
        _problem(d.http.get(f"{d.base}/Practitioner/_history?_offset=-1"), 400, "_offset")
        _problem(d.http.get(f"{d.base}/_history?_type=Practitioner,Nobody"), 400, "_type")
        strict = {"Prefer": "handling=strict"}
        _problem(d.http.get(f"{d.base}/Practitioner/_history?_sinse=2024", headers=strict), 400, "_sinse")
        _problem(d.http.get(f"{d.base}/Practitioner/_history?_type=Location", headers=strict), 400, "_type")
        assert d.http.get(f"{d.base}/Practitioner/_history?_sinse=2024").status_code == 200  # lenient: ignored
        _problem(d.http.get(f"{d.base}/Nobody/_history"), 404, "Nobody")
        anonymous = httpx.get(f"{d.base}/Practitioner/_history", timeout=30)
        assert anonymous.status_code == 401 and anonymous.json()["resourceType"] == "OperationOutcome"
