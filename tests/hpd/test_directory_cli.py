"""``esante hpd …`` through typer's runner (import, synthetic directory, codes), the code systems served by a real
server over HTTP, and the synthetic national directory."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import httpx
import orjson
from typer.testing import CliRunner

from esante.app import Platform
from esante.cli import app as cli
from esante.config import Settings
from esante.hpd.csv_source import read_csv
from esante.hpd.directory_import import DirectoryImporter
from esante.hpd.model import PROFESSION_SYSTEM
from esante.hpd.synthetic import DirectoryConfig, DirectorySummary, iter_directory_rows, write_directory_csv
from esante.hpd.terminology import ensure_code_systems
from tests.auth import bearer, register_client
from tests.hpd.directory_support import current, gp, nurse, write_csv
from tests.live_server import loopback_settings, serve


async def _audit_events(platform: Platform) -> list[dict[str, object]]:
    if platform.auditor is not None:
        await platform.auditor.flush()
    async with platform.database.read() as conn:
        rows = await conn.fetch("SELECT content FROM resource WHERE res_type = 'AuditEvent' AND is_current")
    return [orjson.loads(bytes(r[0])) for r in rows]


def test_esante_hpd_import_reports_and_audits_the_run(db_url: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "extract.csv", [gp(), gp(authorisation="MED-1", cns_code="1-2"), nurse()])
    rejects = tmp_path / "rejects.csv"
    runner = CliRunner()
    env = {"ESANTE_VAR_DIR": str(tmp_path / "var")}
    result = runner.invoke(cli, ["hpd", "import", str(path), "--db", db_url, "--rejects", str(rejects)], env=env)
    assert result.exit_code == 0, result.output
    assert "3 lines, 2 professionals" in result.output and "1 rejected" in result.output
    assert "line 3: cns_code: a CNS provider code" in result.output
    with rejects.open(encoding="utf-8") as handle:
        assert list(csv.reader(handle))[1][0] == "3"
    again = runner.invoke(cli, ["hpd", "import", str(path), "--db", db_url], env=env)
    assert again.exit_code == 0 and "updated nothing" in again.output and "created nothing" in again.output

    async def check() -> None:
        from esante.app import build_platform

        platform = build_platform(Settings(var_dir=tmp_path / "var", database_url=db_url))
        await platform.database.connect()
        try:
            events = [e for e in await _audit_events(platform) if e.get("subtype")]
            imports = [e for e in events if e["subtype"][0]["code"] == "directory-import"]  # type: ignore[index]
            assert len(imports) == 2, "one AuditEvent per run"
            details = {d["type"]: d["valueString"] for d in imports[0]["entity"][0]["detail"]}  # type: ignore[index]
            assert details["rejected"] == "1" and details["lines"] == "3"
            assert imports[0]["entity"][0]["what"]["display"] == "extract.csv"  # type: ignore[index]
            assert sorted(await current(platform, "Practitioner")) == ["INF-2015-00007", "MED-2010-00042"]
        finally:
            await platform.database.close()

    asyncio.run(check())


def test_esante_hpd_import_refuses_a_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["hpd", "import", str(tmp_path / "none.csv")])
    assert result.exit_code == 2 and "is not a readable file" in result.output


def test_esante_hpd_codes_lists_professions_and_specialties() -> None:
    runner = CliRunner()
    professions = runner.invoke(cli, ["hpd", "codes"])
    assert professions.exit_code == 0 and "medecin\tMédecin\tPhysician" in professions.output
    specialties = runner.invoke(cli, ["hpd", "codes", "medecin"])
    assert "med-cardiologie\tCardiologie et angiologie\tCardiology" in specialties.output
    assert runner.invoke(cli, ["hpd", "codes", "astrologue"]).exit_code == 2


def test_esante_hpd_synth_is_deterministic_and_importable(tmp_path: Path) -> None:
    runner = CliRunner()
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    for out in (first, second):
        result = runner.invoke(cli, ["hpd", "synth", "--count", "300", "--seed", "4", "--out", str(out)])
        assert result.exit_code == 0, result.output
    assert first.read_bytes() == second.read_bytes()
    third = tmp_path / "c.csv"
    runner.invoke(cli, ["hpd", "synth", "--count", "300", "--seed", "5", "--out", str(third)])
    assert third.read_bytes() != first.read_bytes()
    assert [entry for entry in read_csv(first) if isinstance(entry[1], str)] == []


def test_the_synthetic_national_directory_looks_like_luxembourg(tmp_path: Path) -> None:
    summary = DirectorySummary()
    rows = list(iter_directory_rows(DirectoryConfig(count=25_005), summary))
    assert summary.professionals == 25_005 and summary.rows == len(rows) > 25_005
    shares = {p: n / summary.professionals for p, n in summary.by_profession.items()}
    assert 0.3 < shares["infirmier"] < 0.4 and 0.08 < shares["medecin"] < 0.12 and 0.02 < shares["pharmacien"] < 0.04
    assert len({r["authorisation"] for r in rows}) == 25_005
    cns = [r["cns_code"] for r in rows if r["cns_code"]]
    assert len(set(cns)) == len({r["authorisation"] for r in rows if r["cns_code"]}), "CNS codes are unique"
    assert all(r["cns_code"].startswith("9") for r in rows if r["profession"] == "medecin")
    kinds = {r["org_type"] for r in rows if r["org_type"]}
    assert kinds == {"hospital", "laboratory", "pharmacy", "practice", "care-network", "care-home", "rescue", "imaging"}
    statuses = {r["status"] for r in rows}
    assert {"suspended", "withdrawn", ""} <= statuses
    cities = {r["city"] for r in rows if r["city"]}
    assert {"Luxembourg", "Esch-sur-Alzette", "Ettelbruck"} <= cities and len(cities) > 50
    assert summary.organizations > 1000 and summary.sites >= summary.organizations


async def test_a_synthetic_directory_imports_without_rejection(platform: Platform, tmp_path: Path) -> None:
    path = tmp_path / "directory.csv"
    summary = write_directory_csv(DirectoryConfig(count=400, seed=9), path)
    result = await DirectoryImporter(platform.store, batch_size=100).run(read_csv(path))
    assert result.rejected == []
    assert result.created["Practitioner"] == summary.professionals == result.professionals
    assert result.status_changes > 0 or summary.professionals < 200


async def test_the_code_systems_are_written_once_and_served_to_everyone(db_url: str, tmp_path: Path) -> None:
    settings = loopback_settings(var_dir=tmp_path, database_url=db_url)
    from esante.app import build_platform

    platform = build_platform(settings)
    await platform.database.connect()
    try:
        await register_client(platform.database)
        with serve(settings, platform) as base:  # the start-up writes them into the empty store
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                for who in ("patient:p-1", "professional:MED-1", "system:test-system"):
                    answer = await http.get(
                        "/CodeSystem", params={"url": PROFESSION_SYSTEM}, headers=bearer(settings, who)
                    )
                    assert answer.status_code == 200, (who, answer.text)
                    (entry,) = answer.json()["entry"]
                    assert entry["resource"]["id"] == "hpd-profession"
                    assert entry["resource"]["meta"]["versionId"] == "1"
                    assert any(c["code"] == "medecin" for c in entry["resource"]["concept"])
                anonymous = await http.get("/CodeSystem/hpd-profession")
                assert anonymous.status_code == 401
        again = build_platform(settings)  # the served platform's database belonged to the server's event loop
        await again.database.connect()
        try:
            assert await ensure_code_systems(again.store) == 0, "unchanged: no new version"
        finally:
            await again.database.close()
    finally:
        if platform.auditor is not None:
            await platform.auditor.close()
        await platform.database.close()


def test_rows_prepared_by_worker_processes_are_the_rows_prepared_in_process(tmp_path: Path) -> None:
    from datetime import date

    from esante.hpd.csv_source import read_csv_rows
    from esante.hpd.prepare_pool import prepared_lines

    path = tmp_path / "directory.csv"
    write_directory_csv(DirectoryConfig(count=500, seed=3), path)
    with path.open(encoding="utf-8") as handle:
        text = handle.read().splitlines()
    text[5] = text[5].replace(",LU,", ",Luxembourg,", 1)  # a bad country
    text.insert(9, "not,a,row")  # too few cells: required values missing
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    today = date(2025, 6, 1)
    local = list(read_csv(path, today))
    pooled = list(prepared_lines(read_csv_rows(path), today, workers=2))
    assert [n for n, _ in pooled] == [n for n, _ in local]
    assert [r for r in pooled if isinstance(r[1], str)] == [r for r in local if isinstance(r[1], str)]
    assert len([r for r in local if isinstance(r[1], str)]) == 2
    for (_, mine), (_, theirs) in zip(local, pooled, strict=True):
        if not isinstance(mine, str):
            assert not isinstance(theirs, str)
            assert [(i.type, i.key, i.body) for i in mine.items] == [(i.type, i.key, i.body) for i in theirs.items]
            assert all(i.checked for i in theirs.items)
