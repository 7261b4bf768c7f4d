"""Who may use the WSE (pharmacy, laboratory and CGDIS software with the operations' scopes; a patient, a
professional, staff, other establishment software or a client without the scope → 403, nothing counted), the use
counters per caller kind and ``esante wse usage``, and ``wse_affiliation`` following Coverage writes of the API."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from esante.cli import app
from tests.auth import token
from tests.wse.support import (
    CHECK,
    MATRICULE,
    PRESCRIBER,
    World,
    affiliation,
    affiliation_rows,
    cer,
    import_file,
    matricule,
    write_csv,
    wse_world,
)


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> Any:
    async with wse_world(db_url, tmp_path) as built:
        await import_file(built.settings, write_csv(tmp_path / "a.csv", [affiliation(1, 1, "CNS", "2015-01-01")]))
        yield built


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


PRESCRIBER_BODY = {
    "resourceType": "Parameters",
    "parameter": [
        {"name": "identifier", "valueIdentifier": {"system": "urn:oid:1.3.182.2.8.1", "value": "1234567897"}}
    ],
}


async def usage(world: World) -> dict[tuple[str, str], int]:
    await world.platform.wse.usage.flush() if False else None  # the server's counter lives in its own loop
    async with world.database.read() as conn:
        rows = await conn.fetch(
            "SELECT caller_kind, operation, SUM(uses) FROM wse_usage GROUP BY caller_kind, operation"
        )
    return {(str(k), str(o)): int(n) for k, o, n in rows}


async def wait_usage(world: World, expected: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    for _ in range(60):  # flushed every second by the server
        found = await usage(world)
        if found == expected:
            return found
        await asyncio.sleep(0.1)
    return await usage(world)


async def test_who_may_check(world: World) -> None:
    settings = world.settings
    refused = {
        "patient": bearer(token(settings, "patient:p1", "patient/*.cruds")),
        "professional": bearer(token(settings, "professional:2850000011", "user/*.cruds")),
        "staff administrator": bearer(
            token(settings, "staff:admin", "user/*.cruds", extra_claims={"roles": ["administrator"]})
        ),
        "hospital software with the scopes": world.client("hospital-1"),
        "all-rights hospital software": world.system(),
        "pharmacy without the scopes": world.client("pharmacy-narrow"),
        "pharmacy with the eligibility scope only (prescriber)": world.client(
            "pharmacy-1", "system/CoverageEligibilityRequest.c"
        ),
    }
    both = (CHECK, PRESCRIBER)
    async with httpx.AsyncClient(timeout=30) as http:
        for who, headers in refused.items():
            for path in (PRESCRIBER,) if "eligibility scope only" in who else both:
                body = cer(MATRICULE, matricule(1)) if path == CHECK else PRESCRIBER_BODY
                response = await http.post(f"{world.fhir}/{path}", json=body, headers=headers)
                assert response.status_code == 403, (who, path, response.text)
                assert response.json()["resourceType"] == "OperationOutcome"
        assert (await http.post(f"{world.fhir}/{CHECK}", json=cer(MATRICULE, matricule(1)))).status_code == 401
        for client in ("pharmacy-1", "lab-1", "cgdis-1"):
            for path in both:
                body = cer(MATRICULE, matricule(1)) if path == CHECK else PRESCRIBER_BODY
                ok = await http.post(f"{world.fhir}/{path}", json=body, headers=world.client(client))
                assert ok.status_code == 200, (client, path, ok.text)
        # the check answers nothing else: a pharmacy's WSE token reads no Coverage
        coverage_id = (await affiliation_rows(world.database))[0][1]
        read = await http.get(f"{world.fhir}/Coverage/{coverage_id}", headers=world.client())
        assert read.status_code == 403
    # only the six accepted uses are counted, each under its caller's kind
    expected = {(k, o): 1 for k in ("pharmacy", "laboratory", "cgdis") for o in ("eligibility", "prescriber")}
    assert await wait_usage(world, expected) == expected


async def test_usage_counters_and_report(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        for client, n in (("pharmacy-1", 5), ("lab-1", 3), ("cgdis-1", 1)):
            for _ in range(n):
                response = await http.post(
                    f"{world.fhir}/{CHECK}", json=cer(MATRICULE, matricule(1)), headers=world.client(client)
                )
                assert response.status_code == 200
        malformed = await http.post(f"{world.fhir}/{CHECK}", json={"resourceType": "X"}, headers=world.client())
        assert malformed.status_code == 400  # not a use
        await http.get(
            f"{world.fhir}/{CHECK}", params={"patient": f"{MATRICULE}|{matricule(2)}"}, headers=world.client()
        )
    expected = {("pharmacy", "eligibility"): 6, ("laboratory", "eligibility"): 3, ("cgdis", "eligibility"): 1}
    assert await wait_usage(world, expected) == expected
    async with world.database.read() as conn:
        columns = await conn.fetch("SELECT * FROM wse_usage")
    assert all(len(row) == 4 for row in columns)  # day, kind, operation, count: nothing about the persons
    from esante.wse.usage import today_lu

    monkeypatch.setenv("ESANTE_DATABASE_URL", world.settings.effective_database_url)
    monkeypatch.setenv("ESANTE_VAR_DIR", str(tmp_path / "var"))
    month = today_lu()[:7]
    result = await asyncio.to_thread(CliRunner().invoke, app, ["wse", "usage", "--month", month, "--by-day"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"{month}\tpharmacy\teligibility\t6" in lines and f"{month}\tlaboratory\teligibility\t3" in lines
    assert f"{month}\tcgdis\teligibility\t1" in lines and f"{month}\tpharmacy\tprescriber\t0" in lines
    assert f"{month}\ttotal\tall\t10" in lines
    assert f"{today_lu()}\tpharmacy\teligibility\t6" in lines
    other = await asyncio.to_thread(CliRunner().invoke, app, ["wse", "usage", "--month", "2001-01"])
    assert "2001-01\ttotal\tall\t0" in other.output
    bad = await asyncio.to_thread(CliRunner().invoke, app, ["wse", "usage", "--month", "2024-13"])
    assert bad.exit_code == 2 and "YYYY-MM" in bad.output


async def test_the_index_follows_coverage_writes_of_the_api(world: World) -> None:
    [(_, coverage_id, *_rest)] = await affiliation_rows(world.database)
    async with httpx.AsyncClient(timeout=30) as http:
        url = f"{world.fhir}/Coverage/{coverage_id}"
        body = (await http.get(url, headers=world.system())).json()
        body["period"]["end"] = "2020-12-31"
        assert (await http.put(url, json=body, headers=world.system())).status_code == 200
        assert (await affiliation_rows(world.database))[0][7] == "2020-12-31"
        answer = await http.post(f"{world.fhir}/{CHECK}", json=cer(MATRICULE, matricule(1)), headers=world.client())
        assert answer.json()["error"][0]["code"]["coding"][0]["code"] == "after-affiliation"
        # a Coverage that is not a CCSS affiliation (no affiliation number) has no row
        other = {k: v for k, v in body.items() if k not in ("id", "meta", "identifier")}
        created = await http.post(f"{world.fhir}/Coverage", json=other, headers=world.system())
        assert created.status_code == 201
        assert len(await affiliation_rows(world.database)) == 1
        assert (await http.delete(url, headers=world.system())).status_code == 204
        assert await affiliation_rows(world.database) == []
        gone = await http.post(f"{world.fhir}/{CHECK}", json=cer(MATRICULE, matricule(1)), headers=world.client())
        assert gone.json()["error"][0]["code"]["coding"][0]["code"] == "unknown-person"


async def test_the_capability_statement_names_the_operations(world: World) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        statement = (await http.get(f"{world.fhir}/metadata")).json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert "check" in [op["name"] for op in resources["CoverageEligibilityRequest"]["operation"]]
    assert "wse-prescriber-check" in [op["name"] for op in resources["Practitioner"]["operation"]]
