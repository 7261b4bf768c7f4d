"""The eligibility check over real HTTP on both databases: yes/no by matricule and by eSanté id, the fund and the
period, every negative answer with its code (never a server error), malformed requests as 400s, and the audit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from esante.fhir.validation import validate_resource
from esante.identifiers.esante_id import new_esante_id
from tests.wse.support import (
    CHECK,
    ESANTE_ID,
    MATRICULE,
    TODAY,
    World,
    affiliation,
    audit_events,
    cer,
    certify,
    days,
    error_codes,
    import_file,
    matricule,
    query_of,
    write_csv,
    wse_world,
)


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> Any:
    async with wse_world(db_url, tmp_path) as built:
        rows = [
            affiliation(1, 1, "CNS", "2015-01-01", end="2019-12-31"),  # two funds over time
            affiliation(2, 1, "CMFEP", "2020-01-01"),
            affiliation(3, 2, "CNS", "2018-03-01", end=days(-30)),  # ended a month ago
            affiliation(4, 3, "EMCFL", "2021-01-01", end="2021-12-31"),  # two periods with a gap
            affiliation(5, 3, "EMCFL", "2023-01-01"),
            affiliation(6, 4, "CNS", "2019-01-01", status="cancelled"),  # annulled: as if never recorded
            affiliation(7, 5, "FOREIGN-FR", "2022-06-01", type="s1-registration"),
            affiliation(8, 6, "CNS", days(10)),  # starts in ten days
        ]
        result = await import_file(built.settings, write_csv(tmp_path / "aff.csv", rows))
        assert result.created == len(rows) and not result.rejected
        yield built


async def check(world: World, http: httpx.AsyncClient, body: dict[str, Any], client: str = "pharmacy-1") -> Any:
    response = await http.post(f"{world.fhir}/{CHECK}", json=body, headers=world.client(client))
    assert response.status_code == 200, response.text
    answer = response.json()
    validate_resource(answer, expected_type="CoverageEligibilityResponse")
    return answer


async def test_affiliated_by_matricule_with_fund_and_period(world: World) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        now = await check(world, http, cer(MATRICULE, matricule(1)))
        assert now["outcome"] == "complete" and "error" not in now
        assert now["servicedDate"] == TODAY.isoformat()
        assert now["insurer"]["identifier"] == {"system": "urn:esante:wse:insurer", "value": "CMFEP"}
        assert now["insurer"]["reference"] == "Organization/wse-insurer-cmfep"
        [insurance] = now["insurance"]
        assert insurance["inforce"] is True and insurance["benefitPeriod"] == {"start": "2020-01-01"}
        assert now["patient"]["identifier"] == {"system": MATRICULE, "value": matricule(1)}
        # the same person in 2018: the other fund, with its period
        before = await check(world, http, cer(MATRICULE, matricule(1), "2018-06-01"))
        assert before["insurer"]["identifier"]["value"] == "CNS"
        assert before["insurance"][0]["benefitPeriod"] == {"start": "2015-01-01", "end": "2019-12-31"}
        # the Organization the answer names exists
        org = await http.get(f"{world.fhir}/Organization/wse-insurer-cns", headers=world.system())
        assert org.status_code == 200 and org.json()["name"] == "Caisse nationale de santé"
        # the boundaries are inclusive
        last = await check(world, http, cer(MATRICULE, matricule(1), "2019-12-31"))
        first = await check(world, http, cer(MATRICULE, matricule(1), "2020-01-01"))
        assert last["insurer"]["identifier"]["value"] == "CNS" and first["insurer"]["identifier"]["value"] == "CMFEP"


async def test_get_invocation_and_separators(world: World) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(
            f"{world.fhir}/{CHECK}",
            params={"patient": f"{MATRICULE}|{matricule(1)[:4]} {matricule(1)[4:]}", "servicedDate": "2018-01-02"},
            headers=world.client(),
        )
        assert response.status_code == 200, response.text
        assert response.json()["insurance"][0]["inforce"] is True
        assert response.json()["patient"]["identifier"]["value"] == matricule(1)


@pytest.mark.parametrize(
    ("who", "served", "code", "outcome", "periods"),
    [
        (2, days(-30), None, "complete", 1),  # the ended affiliation covers its last day
        (2, days(-29), "after-affiliation", "complete", 1),  # ended thirty days ago
        (1, "2014-12-31", "before-affiliation", "complete", 2),
        (3, "2022-06-01", "between-affiliations", "complete", 2),
        (3, "2023-01-01", None, "complete", 1),
        (4, days(0), "unknown-person", "complete", 0),  # only a cancelled affiliation
        (7, days(0), "unknown-person", "complete", 0),  # never affiliated
        (6, days(0), "before-affiliation", "complete", 1),  # starts in ten days
        (6, days(10), None, "complete", 0),
        (1, days(40), "date-out-of-range", "error", 0),  # beyond wse_future_days
    ],
)
async def test_answers(world: World, who: int, served: str, code: str | None, outcome: str, periods: int) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await check(world, http, cer(MATRICULE, matricule(who), served))
    assert answer["outcome"] == outcome
    if code is None:
        assert "error" not in answer and all(i["inforce"] for i in answer["insurance"])
    else:
        assert error_codes(answer) == [code]
        assert all(not i["inforce"] for i in answer.get("insurance", []))
        assert len(answer.get("insurance", [])) == periods
        assert answer["insurer"]["identifier"]["value"] == "CCSS"  # the register answers


async def test_foreign_fund(world: World) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await check(world, http, cer(MATRICULE, matricule(5)))
    assert answer["insurer"]["identifier"]["value"] == "FOREIGN-FR" and "reference" not in answer["insurer"]


@pytest.mark.parametrize(
    ("value", "code", "words"),
    [
        (matricule(1)[:-1] + str((int(matricule(1)[-1]) + 1) % 10), "invalid-matricule", "Verhoeff"),
        (matricule(1)[:11] + str((int(matricule(1)[11]) + 1) % 10) + matricule(1)[12], "invalid-matricule", "Luhn"),
        ("19801301001", "invalid-matricule", "month"),
        ("12345", "invalid-matricule", "13 digits"),
    ],
)
async def test_invalid_matricule_is_an_answer(world: World, value: str, code: str, words: str) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await check(world, http, cer(MATRICULE, value))
    assert answer["outcome"] == "error" and error_codes(answer) == [code]
    assert words in answer["disposition"] and "insurance" not in answer


async def test_by_esante_id_through_the_mpi(world: World) -> None:
    patient_id, esante = (await certify(world.settings, matricule(1)))[matricule(1)]
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await check(world, http, cer(ESANTE_ID, esante, "2018-06-01"))
        assert answer["insurer"]["identifier"]["value"] == "CNS"
        assert answer["patient"]["reference"] == f"Patient/{patient_id}"
        assert answer["patient"]["identifier"] == {"system": ESANTE_ID, "value": esante}
        assert matricule(1) not in str(answer)  # asked by eSanté id: the matricule is not told
        # by matricule, the certified Patient is named too
        by_matricule = await check(world, http, cer(MATRICULE, matricule(1)))
        assert by_matricule["patient"]["reference"] == f"Patient/{patient_id}"
        # an eSanté id nobody holds, one with a bad check digit
        unknown = await check(world, http, cer(ESANTE_ID, new_esante_id()))
        assert error_codes(unknown) == ["unknown-person"] and unknown["outcome"] == "complete"
        bad = await check(world, http, cer(ESANTE_ID, esante[:9] + str((int(esante[9]) + 1) % 10)))
        assert error_codes(bad) == ["invalid-esante-id"] and bad["outcome"] == "error"
        # the patient sees who checked their coverage
        events = await audit_events(world, http, patient=f"Patient/{patient_id}")
        checks = [e for e in events if CHECK in query_of(e)]
        assert len(checks) == 2
        assert all(e["agent"][0]["who"]["identifier"]["value"] == "pharmacy-1" for e in checks)


async def test_every_check_is_audited_with_the_person_and_coverage(world: World) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        await check(
            world, http, cer(MATRICULE, matricule(2), days(-1), identifier=[{"system": "urn:x", "value": "r1"}])
        )
        await check(world, http, cer(MATRICULE, matricule(7)))
        events = [e for e in await audit_events(world, http) if CHECK in query_of(e)]
    assert len(events) == 2
    unknown, known = events  # newest first
    persons = [e["what"] for e in known["entity"] if e.get("role", {}).get("code") == "1"]
    assert persons == [{"identifier": {"system": MATRICULE, "value": matricule(2)}}]
    coverages = [e["what"]["reference"] for e in known["entity"] if e.get("role", {}).get("code") == "4"]
    assert len(coverages) == 1 and coverages[0].startswith("Coverage/")
    assert known["outcome"] == "0" and known["subtype"][0]["code"] == "operation"
    assert [e["what"] for e in unknown["entity"] if e.get("role", {}).get("code") == "1"] == [
        {"identifier": {"system": MATRICULE, "value": matricule(7)}}
    ]


async def test_request_identifier_is_echoed(world: World) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await check(world, http, cer(MATRICULE, matricule(1), identifier=[{"system": "urn:x", "value": "r1"}]))
        plain = await http.post(
            f"{world.fhir}/{CHECK}",
            json=cer(MATRICULE, matricule(1)),
            headers={**world.client(), "X-Request-Id": "abc"},
        )
    assert answer["request"] == {"identifier": {"system": "urn:x", "value": "r1"}}
    assert plain.json()["request"] == {"identifier": {"system": "urn:esante:request-id", "value": "abc"}}


MALFORMED: list[tuple[str, Any, str]] = [
    ("not a CER", {"resourceType": "Patient"}, "CoverageEligibilityRequest"),
    ("no patient", {"resourceType": "CoverageEligibilityRequest"}, "patient"),
    ("patient by reference only", cer(MATRICULE, "x") | {"patient": {"reference": "Patient/1"}}, "patient.identifier"),
    ("unknown system", cer("urn:oid:9.9", "1"), "matricule"),
    ("bad date", cer(MATRICULE, matricule(1), "2024-02-30"), "servicedDate"),
    ("partial date", cer(MATRICULE, matricule(1), "2024-02"), "servicedDate"),
    ("period", cer(MATRICULE, matricule(1)) | {"servicedPeriod": {"start": "2024-01-01"}}, "servicedPeriod"),
    ("cancelled request", cer(MATRICULE, matricule(1)) | {"status": "cancelled"}, "status"),
    ("unknown element", cer(MATRICULE, matricule(1)) | {"colour": "blue"}, "colour"),
    ("wrong type", cer(MATRICULE, matricule(1)) | {"purpose": "validation"}, "purpose"),
    ("JSON array", [1, 2], "JSON object"),
]


@pytest.mark.parametrize(("case", "body", "words"), MALFORMED, ids=[c[0] for c in MALFORMED])
async def test_malformed_requests_are_400(world: World, case: str, body: Any, words: str) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(f"{world.fhir}/{CHECK}", json=body, headers=world.client())
    assert response.status_code == 400, (case, response.text)
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert words in str(outcome), (case, outcome)


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({}, "patient: required"),
        ({"patient": matricule(1)}, "system|value"),
        ({"patient": f"{MATRICULE}|{matricule(1)}", "date": "2024-01-01"}, "unknown parameter 'date'"),
        ({"patient": f"{MATRICULE}|{matricule(1)}", "servicedDate": "01/02/2024"}, "servicedDate"),
    ],
)
async def test_malformed_get_is_400(world: World, params: dict[str, str], words: str) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(f"{world.fhir}/{CHECK}", params=params, headers=world.client())
    assert response.status_code == 400, response.text
    assert words in response.text


async def test_invalid_json_body(world: World) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{world.fhir}/{CHECK}",
            content=b"{not json",
            headers={**world.client(), "Content-Type": "application/fhir+json"},
        )
    assert response.status_code == 400 and response.json()["resourceType"] == "OperationOutcome"
