"""``Practitioner/$wse-prescriber-check`` over real HTTP on both databases: the right to practise on the day (active,
suspended, withdrawn, restored), the authorisation's validity, the profession and specialty against the prescribing
table, unknown and invalid identifiers as answers, malformed requests as 400s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from esante.hpd.model import MINISTRY_AUTHORISATION_SYSTEM, PROFESSION_SYSTEM
from esante.hpd.practise import change_right_to_practise
from esante.hpd.practise_model import Agent, Source
from esante.identifiers.cns_provider_code import CNS_PROVIDER_SYSTEM
from esante.identifiers.ehealth_id import EHEALTH_ID_SYSTEM, make_ehealth_id
from esante.mpi.cli import open_platform
from tests.wse.support import PRESCRIBER, TODAY, World, days, wse_world


def ehid(n: int) -> str:
    return make_ehealth_id(f"{386_000_000 + n:09d}")


def practitioner(pid: str, n: int, profession: str, *specialties: str, start: str = "2000-01-01", end: str = "") -> Any:
    period = {"start": start, **({"end": end} if end else {})}
    return {
        "resourceType": "Practitioner",
        "id": pid,
        "active": True,
        "identifier": [
            {"system": EHEALTH_ID_SYSTEM, "value": ehid(n)},
            {"system": CNS_PROVIDER_SYSTEM, "value": f"{900000 + n}-01"},
            {"system": MINISTRY_AUTHORISATION_SYSTEM, "value": f"M{n}"},
        ],
        "name": [{"family": pid}],
        "qualification": [
            {"code": {"coding": [{"system": PROFESSION_SYSTEM, "code": code}]}, "period": period}
            for code in (profession, *specialties)
        ],
    }


async def change(world: World, pid: str, status: str, effective: str) -> None:
    async with open_platform(world.settings) as platform, platform.database.transaction() as conn:
        session = platform.store.session(conn)
        await change_right_to_practise(
            session,
            pid,
            status,
            reason="test decision",
            source=Source.ADMINISTRATOR,
            agent=Agent("t"),
            effective=effective,
        )


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> Any:
    async with wse_world(db_url, tmp_path) as built, httpx.AsyncClient(timeout=30) as http:
        entries = [
            practitioner("doc-1", 1, "medecin", "med-generale"),
            practitioner("doc-2", 2, "medecin"),
            practitioner("doc-3", 3, "medecin", "med-pediatrie"),
            practitioner("dent-1", 4, "medecin-dentiste"),
            practitioner("nurse-1", 5, "infirmier"),
            practitioner("mw-1", 6, "sage-femme"),
            practitioner("old-1", 7, "medecin", start="1990-01-01", end="2010-12-31"),
            practitioner("oral-1", 8, "medecin-dentiste", "dent-chirurgie-buccale"),
        ]
        for entry in entries:
            response = await http.put(f"{built.fhir}/Practitioner/{entry['id']}", json=entry, headers=built.system())
            assert response.status_code in (200, 201), response.text
        await change(built, "doc-2", "suspended", days(-30))
        await change(built, "doc-3", "withdrawn", days(-60))
        await change(built, "doc-3", "active", days(-20))  # restored
        yield built


def params(system: str, value: str, day: str | None = None, *categories: str) -> dict[str, Any]:
    items: list[dict[str, Any]] = [{"name": "identifier", "valueIdentifier": {"system": system, "value": value}}]
    if day:
        items.append({"name": "date", "valueDate": day})
    items += [{"name": "category", "valueCode": c} for c in categories]
    return {"resourceType": "Parameters", "parameter": items}


def values(answer: dict[str, Any], name: str) -> list[Any]:
    out = []
    for p in answer["parameter"]:
        if p["name"] == name:
            out.append(next((v for k, v in p.items() if k.startswith("value")), p.get("part")))
    return out


async def ask(world: World, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(f"{world.fhir}/{PRESCRIBER}", json=body, headers=world.client("lab-1"))
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def reason(answer: dict[str, Any]) -> str:
    return str(values(answer, "reason")[0]["code"])


async def test_an_active_physician_may_prescribe_everything(world: World) -> None:
    answer = await ask(world, params(EHEALTH_ID_SYSTEM, ehid(1)))
    assert values(answer, "allowed") == [True] and reason(answer) == "may-prescribe"
    assert values(answer, "practitioner")[0]["reference"] == "Practitioner/doc-1"
    assert values(answer, "rightToPractise") == ["active"]
    assert values(answer, "profession")[0]["code"] == "medecin"
    assert [s["code"] for s in values(answer, "specialty")] == ["med-generale"]
    assert values(answer, "date") == [TODAY.isoformat()]
    categories = {p[0]["valueCoding"]["code"]: p[1]["valueBoolean"] for p in values(answer, "category")}
    assert categories == dict.fromkeys(
        ("medication", "laboratory", "imaging", "physiotherapy", "nursing", "medical-device"), True
    )
    by_cns = await ask(world, params(CNS_PROVIDER_SYSTEM, "90000101", None, "medication"))  # typed without the dash
    assert reason(by_cns) == "may-prescribe" and len(values(by_cns, "category")) == 1


@pytest.mark.parametrize(
    ("who", "day", "categories", "allowed", "code", "status"),
    [
        ("doc-2", days(-31), (), True, "may-prescribe", "active"),  # before the suspension
        ("doc-2", days(-30), (), False, "no-right-to-practise", "suspended"),  # from its effective day
        ("doc-2", days(0), (), False, "no-right-to-practise", "suspended"),
        ("doc-3", days(-61), (), True, "may-prescribe", "active"),
        ("doc-3", days(-40), (), False, "no-right-to-practise", "withdrawn"),
        ("doc-3", days(0), (), True, "may-prescribe", "active"),  # restored
        ("dent-1", days(0), ("medication",), True, "may-prescribe", "active"),
        ("dent-1", days(0), ("physiotherapy",), False, "category-not-allowed", "active"),
        ("dent-1", days(0), ("medication", "nursing"), False, "category-not-allowed", "active"),
        ("nurse-1", days(0), (), False, "profession-may-not-prescribe", "active"),
        ("mw-1", days(0), ("laboratory",), True, "may-prescribe", "active"),
        ("mw-1", days(0), ("imaging",), False, "category-not-allowed", "active"),
        ("old-1", "2010-06-01", (), True, "may-prescribe", "active"),
        ("old-1", days(0), (), False, "not-authorised-on-date", "active"),  # authorisation ended in 2010
    ],
)
async def test_answers(
    world: World, who: str, day: str, categories: tuple[str, ...], allowed: bool, code: str, status: str
) -> None:
    number = {"doc-2": 2, "doc-3": 3, "dent-1": 4, "nurse-1": 5, "mw-1": 6, "old-1": 7}[who]
    answer = await ask(world, params(EHEALTH_ID_SYSTEM, ehid(number), day, *categories))
    assert values(answer, "allowed") == [allowed], answer
    assert reason(answer) == code and values(answer, "rightToPractise") == [status]


async def test_limitations_are_told(world: World) -> None:
    dentist = await ask(world, params(EHEALTH_ID_SYSTEM, ehid(4), None, "medication"))
    [(_code, allowed, limit)] = [tuple(p) for p in values(dentist, "category")]
    assert allowed["valueBoolean"] is True and "dental" in limit["valueString"]
    surgeon = await ask(world, params(EHEALTH_ID_SYSTEM, ehid(8), None, "medication"))
    limits = values(surgeon, "category")[0][2]["valueString"]
    assert "dental and oral care" in limits and "oral surgery" in limits


async def test_unknown_and_invalid_are_answers(world: World) -> None:
    unknown = await ask(world, params(EHEALTH_ID_SYSTEM, ehid(99)))
    assert values(unknown, "allowed") == [False] and reason(unknown) == "unknown-prescriber"
    assert values(unknown, "practitioner") == []
    unknown_cns = await ask(world, params(CNS_PROVIDER_SYSTEM, "123456-78"))
    assert reason(unknown_cns) == "unknown-prescriber"
    good = ehid(1)
    invalid = await ask(world, params(EHEALTH_ID_SYSTEM, good[:9] + str((int(good[9]) + 1) % 10)))
    assert reason(invalid) == "invalid-identifier" and "check digit" in values(invalid, "reason")[0]["display"]
    assert reason(await ask(world, params(CNS_PROVIDER_SYSTEM, "12-34"))) == "invalid-identifier"
    far = await ask(world, params(EHEALTH_ID_SYSTEM, ehid(1), days(60)))
    assert reason(far) == "date-out-of-range" and values(far, "allowed") == [False]


async def test_get_invocation(world: World) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(
            f"{world.fhir}/{PRESCRIBER}",
            params={"identifier": f"{EHEALTH_ID_SYSTEM}|{ehid(4)}", "category": "medication,imaging"},
            headers=world.client(),
        )
    assert response.status_code == 200, response.text
    assert reason(response.json()) == "may-prescribe" and len(values(response.json(), "category")) == 2


MALFORMED: list[tuple[str, Any, str]] = [
    ("not Parameters", {"resourceType": "Patient"}, "Parameters"),
    ("no identifier", {"resourceType": "Parameters", "parameter": []}, "identifier: required"),
    ("unknown system", params("urn:other", "1"), "identifier.system"),
    ("identifier without value", params(EHEALTH_ID_SYSTEM, ""), "a system and a value"),
    ("bad date", params(EHEALTH_ID_SYSTEM, ehid(1), "2024-13-01"), "date"),
    ("unknown category", params(EHEALTH_ID_SYSTEM, ehid(1), None, "surgery"), "surgery"),
    (
        "unknown parameter",
        {"resourceType": "Parameters", "parameter": [{"name": "who", "valueString": "x"}]},
        "unknown parameter",
    ),
    (
        "two identifiers",
        {"resourceType": "Parameters", "parameter": params(EHEALTH_ID_SYSTEM, ehid(1))["parameter"] * 2},
        "more than once",
    ),
    (
        "wrong value type",
        {"resourceType": "Parameters", "parameter": [{"name": "identifier", "valueBoolean": True}]},
        "valueIdentifier",
    ),
]


@pytest.mark.parametrize(("case", "body", "words"), MALFORMED, ids=[c[0] for c in MALFORMED])
async def test_malformed_requests_are_400(world: World, case: str, body: Any, words: str) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(f"{world.fhir}/{PRESCRIBER}", json=body, headers=world.client())
    assert response.status_code == 400, (case, response.text)
    assert response.json()["resourceType"] == "OperationOutcome" and words in response.text, (case, response.text)
