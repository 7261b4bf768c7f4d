"""``esante wse import-affiliations`` on both databases: CSV and NDJSON round trips, idempotency, delta files that
add, change, end and annul affiliations, rejected lines with their number and reason (the rest imported), one
AuditEvent per run, the MPI's certified Patient named when known; ``wse_affiliation`` follows every Coverage write,
including the API's."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from esante.cli import app
from esante.config import load_settings
from esante.db.engine import create_database
from esante.fhir.validation import validate_resource
from tests.wse.support import MATRICULE, affiliation, certify, matricule, write_csv

runner = CliRunner()


@pytest.fixture
def env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ESANTE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("ESANTE_DATABASE_URL", db_url)
    return db_url


def run(*args: str) -> Any:
    result = runner.invoke(app, ["wse", *args])
    return result


def query(db_url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    async def go() -> list[tuple[Any, ...]]:
        database = create_database(db_url, pool_size=1)
        await database.connect()
        try:
            async with database.read() as conn:
                return await conn.fetch(sql, params)
        finally:
            await database.close()

    return asyncio.run(go())


def coverages(db_url: str) -> dict[str, dict[str, Any]]:
    rows = query(db_url, "SELECT content FROM resource WHERE res_type = 'Coverage' AND is_current AND NOT deleted")
    out = {}
    for (content,) in rows:
        body = orjson.loads(bytes(content))
        out[body["identifier"][0]["value"]] = body
    return out


def index_rows(db_url: str) -> list[tuple[Any, ...]]:
    return query(
        db_url,
        "SELECT affiliation_id, matricule, insurer, coverage_type, status, start_date, end_date FROM wse_affiliation "
        "ORDER BY affiliation_id",
    )


def versions(db_url: str) -> int:
    return int(query(db_url, "SELECT COUNT(*) FROM resource WHERE res_type = 'Coverage'")[0][0])


def import_events(db_url: str) -> list[dict[str, Any]]:
    rows = query(db_url, "SELECT content FROM audit_journal")
    rows += query(db_url, "SELECT content FROM resource WHERE res_type = 'AuditEvent'")
    events = [orjson.loads(bytes(c)) for (c,) in rows]
    return [e for e in events if e.get("subtype", [{}])[0].get("code") == "affiliation-import"]


BASE = [
    affiliation(1, 1, "CNS", "2015-01-01", end="2019-12-31"),
    affiliation(2, 1, "CMFEP", "2020-01-01"),
    affiliation(3, 2, "EMCFL", "2018-03-01"),
    affiliation(4, 3, "CNS", "2021-05-01", type="co-insured", relationship="child", subscriber=matricule(2)),
    affiliation(5, 4, "FOREIGN-BE", "2022-01-01", type="s1-registration"),
]


def test_csv_round_trip_and_idempotency(env: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "ccss.csv", BASE)
    first = run("import-affiliations", str(path))
    assert first.exit_code == 0, first.output
    assert "5 read: 5 created, 0 updated, 0 unchanged, 0 rejected" in first.output
    stored = coverages(env)
    assert set(stored) == {f"AFF{n:07d}" for n in range(1, 6)}
    for body in stored.values():
        validate_resource(body, expected_type="Coverage")
    child = stored["AFF0000004"]
    assert child["beneficiary"] == {"type": "Patient", "identifier": {"system": MATRICULE, "value": matricule(3)}}
    assert child["subscriber"]["identifier"]["value"] == matricule(2)
    assert child["relationship"]["coding"][0]["code"] == "child"
    assert child["payor"][0]["reference"] == "Organization/wse-insurer-cns"
    assert stored["AFF0000005"]["payor"][0] == {
        "type": "Organization",
        "identifier": {"system": "urn:esante:wse:insurer", "value": "FOREIGN-BE"},
        "display": "Foreign institution (BE)",
    }
    assert stored["AFF0000001"]["period"] == {"start": "2015-01-01", "end": "2019-12-31"}
    assert index_rows(env) == [
        ("AFF0000001", matricule(1), "CNS", "principal", "active", "2015-01-01", "2019-12-31"),
        ("AFF0000002", matricule(1), "CMFEP", "principal", "active", "2020-01-01", None),
        ("AFF0000003", matricule(2), "EMCFL", "principal", "active", "2018-03-01", None),
        ("AFF0000004", matricule(3), "CNS", "co-insured", "active", "2021-05-01", None),
        ("AFF0000005", matricule(4), "FOREIGN-BE", "s1-registration", "active", "2022-01-01", None),
    ]
    organizations = query(env, "SELECT res_id FROM resource WHERE res_type = 'Organization' ORDER BY res_id")
    assert [r[0] for r in organizations] == [
        "wse-insurer-ccss",
        "wse-insurer-cmfec",
        "wse-insurer-cmfep",
        "wse-insurer-cns",
        "wse-insurer-emcfl",
    ]
    count = versions(env)
    again = run("import-affiliations", str(path))
    assert again.exit_code == 0, again.output
    assert "0 created, 0 updated, 5 unchanged, 0 rejected" in again.output
    assert versions(env) == count  # nothing written
    assert len(import_events(env)) == 2  # one AuditEvent per run
    event = import_events(env)[0]
    details = {d["type"]: d["valueString"] for d in event["entity"][0]["detail"]}
    assert event["entity"][0]["what"]["display"] == "ccss.csv" and details["created"] in ("5", "0")


def test_delta_adds_changes_ends_and_annuls(env: str, tmp_path: Path) -> None:
    assert run("import-affiliations", str(write_csv(tmp_path / "base.csv", BASE))).exit_code == 0
    ids = {k: v["id"] for k, v in coverages(env).items()}
    delta = [
        affiliation(2, 1, "CMFEP", "2020-01-01", end="2024-06-30"),  # ended
        affiliation(3, 2, "CNS", "2018-03-01"),  # changed fund
        affiliation(5, 4, "FOREIGN-BE", "2022-01-01", type="s1-registration", status="cancelled"),  # annulled
        affiliation(6, 1, "CNS", "2024-07-01"),  # new
    ]
    result = run("import-affiliations", str(write_csv(tmp_path / "delta.csv", delta)))
    assert result.exit_code == 0, result.output
    assert "4 read: 1 created, 3 updated, 0 unchanged, 0 rejected" in result.output
    stored = coverages(env)
    assert stored["AFF0000002"]["id"] == ids["AFF0000002"] and stored["AFF0000002"]["meta"]["versionId"] == "2"
    assert stored["AFF0000002"]["period"]["end"] == "2024-06-30"
    assert stored["AFF0000003"]["payor"][0]["identifier"]["value"] == "CNS"
    assert stored["AFF0000005"]["status"] == "cancelled"
    assert stored["AFF0000001"]["meta"]["versionId"] == "1"  # not in the delta: left alone
    rows = {r[0]: r for r in index_rows(env)}
    assert rows["AFF0000002"][6] == "2024-06-30" and rows["AFF0000003"][2] == "CNS"
    assert rows["AFF0000005"][4] == "cancelled" and rows["AFF0000006"][5] == "2024-07-01"
    assert len(rows) == 6


def test_rejected_lines_are_reported_and_the_rest_imported(env: str, tmp_path: Path) -> None:
    good = matricule(9)
    bad_check = good[:-1] + str((int(good[-1]) + 1) % 10)
    lines = [
        "affiliation_id,matricule,insurer,type,start,end,status,relationship,subscriber",
        f"AFF1,{good},CNS,principal,2020-01-01,,,,",  # 2: fine
        f"AFF2,{bad_check},CNS,principal,2020-01-01,,,,",  # 3: Verhoeff
        f"AFF3,{good},XYZ,principal,2020-01-01,,,,",  # 4: unknown fund
        f"AFF4,{good},CNS,principal,2020-02-30,,,,",  # 5: no such day
        f"AFF5,{good},CNS,principal,2020-01-01,2019-01-01,,,",  # 6: end before start
        f"AFF6,{good},CNS,student,2020-01-01,,,,",  # 7: unknown type
        f"AFF1,{good},CNS,principal,2021-01-01,,,,",  # 8: twice in the file
        f"AFF7,{good},CNS,principal,2020-01-01",  # 9: missing cells
        f",{good},CNS,principal,2020-01-01,,,,",  # 10: no affiliation id
        f"AFF8,{good},CNS,co-insured,2020-01-01,,,child,",  # 11: co-insured without subscriber
        f"AFF9,{good},CNS,principal,2020-01-01,,paused,,",  # 12: unknown status
        f"AFF10,{good},FOREIGN-US,s1-registration,2020-01-01,,,,",  # 13: not an EU/EEA/CH institution
        f"AFF11,{good},cmfec,principal,2020-01-01,,,,",  # 14: fine (codes are upper-cased)
    ]
    path = tmp_path / "mixed.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rejects = tmp_path / "rejects.csv"
    result = run("import-affiliations", str(path), "--rejects", str(rejects))
    assert result.exit_code == 0, result.output
    assert "13 read: 2 created, 0 updated, 0 unchanged, 11 rejected" in result.output
    with rejects.open(encoding="utf-8") as handle:
        rows = {int(r["line"]): r["reason"] for r in csv.DictReader(handle)}
    assert sorted(rows) == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    assert "Verhoeff" in rows[3] and "XYZ" in rows[4] and "2020-02-30" in rows[5] and "before start" in rows[6]
    assert "student" in rows[7] and "twice" in rows[8] and "cells" in rows[9] and "affiliation_id" in rows[10]
    assert "subscriber" in rows[11] and "paused" in rows[12] and "FOREIGN-US" in rows[13]
    assert "line 3:" in result.output
    assert set(coverages(env)) == {"AFF1", "AFF11"}
    event = import_events(env)[0]
    assert event["outcome"] == "4" and event["outcomeDesc"] == "11 line(s) rejected"


def test_ndjson_round_trip(env: str, tmp_path: Path) -> None:
    assert run("import-affiliations", str(write_csv(tmp_path / "base.csv", BASE))).exit_code == 0
    exported = [{k: v for k, v in body.items() if k not in ("id", "meta")} for body in coverages(env).values()]
    path = tmp_path / "ccss.ndjson"
    lines = [orjson.dumps(body) for body in exported]
    lines.append(b"{not json")
    lines.append(orjson.dumps({"resourceType": "Patient"}))
    bad = dict(exported[0], identifier=[{"system": "urn:other", "value": "x"}])
    lines.append(orjson.dumps(bad))
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = run("import-affiliations", str(path))
    assert result.exit_code == 0, result.output
    assert "8 read: 0 created, 0 updated, 5 unchanged, 3 rejected" in result.output
    assert "line 6: not JSON" in result.output and "line 7: not a FHIR Coverage" in result.output
    assert "line 8: Coverage.identifier" in result.output
    # an NDJSON line changes an affiliation like a CSV line
    changed = dict(exported[0], period={"start": "2015-01-01", "end": "2016-12-31"})
    path.write_bytes(orjson.dumps(changed) + b"\n")
    assert "1 updated" in run("import-affiliations", str(path)).output


def test_the_mpi_patient_is_named_when_certified(env: str, tmp_path: Path) -> None:
    settings = load_settings()
    patients = asyncio.run(certify(settings, matricule(1)))
    result = run("import-affiliations", str(write_csv(tmp_path / "base.csv", BASE)))
    assert "(2 linked" in result.output
    stored = coverages(env)
    patient_id = patients[matricule(1)][0]
    assert stored["AFF0000002"]["beneficiary"]["reference"] == f"Patient/{patient_id}"
    assert "reference" not in stored["AFF0000003"]["beneficiary"]


def test_bad_files(env: str, tmp_path: Path) -> None:
    missing = run("import-affiliations", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 2 and "not a readable file" in missing.output
    header = tmp_path / "header.csv"
    header.write_text("id,matricule\n1,2\n", encoding="utf-8")
    wrong = run("import-affiliations", str(header))
    assert wrong.exit_code == 2 and "missing columns" in wrong.output
    assert versions(env) == 0


def test_small_batches_and_the_index_rebuilt(env: str, tmp_path: Path) -> None:
    """Batches of two lines: look-ups, creates and updates across many transactions; the derived table rebuilt from
    the Coverages is the one the hooks kept."""
    rows = [affiliation(n, n % 4 + 1, "CNS", f"20{10 + n}-01-01") for n in range(1, 12)]
    path = write_csv(tmp_path / "many.csv", rows)
    assert "11 created" in run("import-affiliations", str(path), "--batch", "2").output
    changed = [affiliation(n, n % 4 + 1, "CMFEC" if n % 3 == 0 else "CNS", f"20{10 + n}-01-01") for n in range(1, 12)]
    result = run("import-affiliations", str(write_csv(tmp_path / "delta.csv", changed)), "--batch", "2")
    assert "0 created, 3 updated, 8 unchanged" in result.output
    kept = index_rows(env)
    assert len(kept) == 11 and sum(1 for r in kept if r[2] == "CMFEC") == 3

    async def rebuild() -> int:
        from esante.wse.affiliation_store import rebuild as rebuild_index

        database = create_database(env, pool_size=1)
        await database.connect()
        try:
            async with database.transaction() as conn:
                return await rebuild_index(conn)
        finally:
            await database.close()

    assert asyncio.run(rebuild()) == 11
    assert index_rows(env) == kept
