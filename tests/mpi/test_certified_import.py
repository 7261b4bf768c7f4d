"""``esante mpi import --certified``: the national register imported idempotently, rejected lines reported."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

from esante.app import Platform, build_platform
from esante.cli import app as cli
from esante.config import Settings
from esante.identifiers.esante_id import is_valid_esante_id
from esante.mpi.certified_import import CertifiedImporter
from esante.mpi.model import ESANTE_ID_SYSTEM, FLAG_SYSTEM, LEVEL_SYSTEM, MATRICULE_SYSTEM
from esante.mpi.sources import read_file

VALID = ["2015123101725", "2014082601689", "1974091186700", "1982080285657", "1893120105732"]


def _patient(matricule: str, family: str = "Schmit", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": MATRICULE_SYSTEM, "value": matricule}],
        "name": [{"use": "official", "family": family, "given": ["Léa"]}],
        "gender": "female",
        "birthDate": f"{matricule[:4]}-{matricule[4:6]}-{matricule[6:8]}" if matricule[6:8] != "00" else matricule[:4],
        **extra,
    }


def _write(path: Path, lines: list[Any]) -> Path:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


async def _certified(platform: Platform) -> dict[str, dict[str, Any]]:
    async with platform.database.read() as conn:
        rows = await conn.fetch("SELECT content FROM resource WHERE res_type = 'Patient' AND is_current")
    people = [orjson.loads(bytes(r[0])) for r in rows]
    return {next(i["value"] for i in p["identifier"] if i["system"] == MATRICULE_SYSTEM): p for p in people}


async def test_import_is_idempotent_and_reports_rejections(platform: Platform, tmp_path: Path) -> None:
    lines: list[Any] = [_patient(m, family=f"Family{i}") for i, m in enumerate(VALID[:4])]
    lines += [
        "{not json",
        _patient("1982080285658"),  # wrong check digit
        {"resourceType": "Patient", "name": [{"family": "NoMatricule"}]},
        {"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
        _patient("1893120105732", birthDate="1893-13-01"),  # not a date
        _patient("19820802856"),  # the old 11-digit form: accepted, flagged
        _patient(VALID[0], family="Family0", identifier=[{"system": MATRICULE_SYSTEM, "value": VALID[0]},
                                                         {"system": ESANTE_ID_SYSTEM, "value": "1111111116"}]),
    ]  # fmt: skip
    source = _write(tmp_path / "register.ndjson", lines)
    importer = CertifiedImporter(platform.store, batch_size=3)
    first = await importer.run(read_file(source))
    assert (first.read, first.created, first.updated, first.unchanged) == (11, 5, 0, 1)
    assert [(r.line, r.reason.split(":")[0].split(" (")[0]) for r in first.rejected] == [
        (5, "not JSON"),
        (6, "invalid matricule"),
        (7, "a certified identity needs exactly one matricule"),
        (8, "not a FHIR Patient"),
        (9, first.rejected[4].reason.split(":")[0].split(" (")[0]),
    ]
    assert "birthDate" in first.rejected[4].reason
    people = await _certified(platform)
    assert sorted(people) == sorted([*VALID[:4], "19820802856"])
    ids = {}
    for matricule, person in people.items():
        assert {"system": LEVEL_SYSTEM, "code": "certified"} in person["meta"]["tag"]
        (esante,) = [i["value"] for i in person["identifier"] if i["system"] == ESANTE_ID_SYSTEM]
        assert is_valid_esante_id(esante) and esante != "1111111116", "only the MPI assigns eSanté identifiers"
        ids[matricule] = (person["id"], esante)
    assert {"system": FLAG_SYSTEM, "code": "old-matricule"} in people["19820802856"]["meta"]["tag"]
    async with platform.database.read() as conn:
        ledger = {str(r[0]): str(r[1]) for r in await conn.fetch("SELECT esante_id, res_id FROM mpi_esante_id")}
    assert ledger == {esante: pid for pid, esante in ids.values()}

    again = await importer.run(read_file(source))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 6), "re-importing changes nothing"
    changed = _write(tmp_path / "delta.ndjson", [_patient(VALID[1], family="Renamed")])
    delta = await importer.run(read_file(changed))
    assert (delta.created, delta.updated) == (0, 1)
    after = (await _certified(platform))[VALID[1]]
    assert after["name"][0]["family"] == "Renamed" and after["meta"]["versionId"] == "2"
    assert (after["id"], next(i["value"] for i in after["identifier"] if i["system"] == ESANTE_ID_SYSTEM)) == ids[
        VALID[1]
    ]


async def test_csv_with_the_documented_columns(platform: Platform, tmp_path: Path) -> None:
    csv = tmp_path / "register.csv"
    csv.write_text(
        "matricule,family,birth_name,given,birth_date,sex,birth_place,street,postal_code,city,country\n"
        f'{VALID[3]},Schmit,Wagner,Léa Marie,1982-08-02,F,"Ettelbruck, LU",12 rue de l\'Alzette,L-4011,'
        "Esch-sur-Alzette,LU\n"
        f"{VALID[2]},Da Silva,,João,1974-09-11,Q,,,,,\n",
        encoding="utf-8",
    )
    result = await CertifiedImporter(platform.store).run(read_file(csv))
    assert (result.created, [r.line for r in result.rejected]) == (1, [3])
    assert "sex must be F, M, X or U" in result.rejected[0].reason
    lea = (await _certified(platform))[VALID[3]]
    assert lea["name"] == [
        {"use": "official", "family": "Schmit", "given": ["Léa", "Marie"]},
        {"use": "maiden", "family": "Wagner"},
    ]
    assert lea["address"][0]["postalCode"] == "L-4011"
    assert lea["extension"][0]["valueAddress"] == {"city": "Ettelbruck", "country": "LU"}
    bad = tmp_path / "bad.csv"
    bad.write_text("matricule,family,given,birth_date,sex,shoe_size\n", encoding="utf-8")
    refused = await CertifiedImporter(platform.store).run(read_file(bad))
    assert "unknown column(s) shoe_size" in refused.rejected[0].reason


def test_cli_import_and_domains(db_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    source = _write(tmp_path / "register.ndjson", [_patient(m) for m in VALID] + ["{oops"])
    rejects = tmp_path / "rejects.csv"
    done = runner.invoke(cli, ["mpi", "import", str(source), "--certified", "--db", db_url, "--rejects", str(rejects)])
    assert done.exit_code == 0, done.output
    assert "6 read: 5 created, 0 updated, 0 unchanged, 1 rejected" in done.output
    assert rejects.read_text().splitlines()[1].startswith('6,"not JSON')
    assert runner.invoke(cli, ["mpi", "import", str(source), "--db", db_url]).exit_code == 2, "--certified is required"
    assert (
        runner.invoke(cli, ["mpi", "import", str(tmp_path / "none.ndjson"), "--certified", "--db", db_url]).exit_code
        == 2
    )

    async def import_audited() -> list[dict[str, Any]]:
        platform = build_platform(Settings(database_url=db_url, warm_up=False))
        await platform.database.connect()
        try:
            async with platform.database.read() as conn:
                rows = await conn.fetch("SELECT content FROM resource WHERE res_type = 'AuditEvent'")
            return [orjson.loads(bytes(r[0])) for r in rows]
        finally:
            await platform.database.close()

    (event,) = asyncio.run(import_audited())
    assert event["type"]["code"] == "110107" and event["outcome"] == "4"
    assert {d["type"]: d["valueString"] for d in event["entity"][0]["detail"]}["created"] == "5"

    hospital = "urn:oid:1.3.182.3.1.1.7.2"
    added = runner.invoke(
        cli, ["mpi", "domains", "add", hospital, "--name", "CHL", "--client", "chl-his", "--db", db_url]
    )
    assert added.exit_code == 0, added.output
    twice = runner.invoke(cli, ["mpi", "domains", "add", hospital, "--name", "CHL", "--db", db_url])
    assert twice.exit_code == 2 and "already registered" in twice.output
    assert runner.invoke(cli, ["mpi", "domains", "add", "1.2.3", "--name", "x", "--db", db_url]).exit_code == 2
    listed = runner.invoke(cli, ["mpi", "domains", "list", "--db", db_url]).output
    assert f"{hospital}\tCHL\t-\tchl-his" in listed and f"{MATRICULE_SYSTEM}\t" in listed
