"""``esante dsp …`` through typer's runner on both databases: open-all over the MPI's certified identities
(idempotent, merged and local identities left out, one AuditEvent per run), destroy-due (every version of the DSP's
resources purged, the services' callbacks run, the proof kept without health data, idempotent) and status."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from esante.app import Platform, build_platform
from esante.cli import app as cli
from esante.config import Settings
from esante.db.migrate import upgrade
from esante.dsp import lifecycle
from esante.dsp.audit import SYSTEM_ACTOR
from esante.dsp.context import dsp_context
from esante.dsp.grants import add_grant
from esante.dsp.grants_model import Kind
from esante.fhir.errors import FhirError
from esante.fhir.store import StoreSession
from tests.dsp.dsp_support import binary, document, submission_set


def _patient(pid: str, n: int, certified: bool = True, active: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "id": pid,
        "active": active,
        "identifier": [{"system": "urn:oid:1.3.182.4.4", "value": f"19800101{n:05d}"}],
        "name": [{"family": f"F{n}"}],
    }
    if certified:
        body["meta"] = {"tag": [{"system": "urn:esante:identity-level", "code": "certified"}]}
    return body


async def _with_platform(settings: Settings, action: Any) -> Any:
    platform = build_platform(settings)
    await platform.database.connect()
    try:
        return await action(platform)
    finally:
        if platform.auditor is not None:
            await platform.auditor.close()
        await platform.database.close()


async def _write(platform: Platform, *resources: dict[str, Any]) -> None:
    async with platform.database.transaction() as conn:
        session = platform.store.session(conn)
        for resource in resources:
            await session.create(resource, res_id=resource["id"])
        await session.flush()


async def _rows(platform: Platform, sql: str, *params: Any) -> list[Any]:
    async with platform.database.read() as conn:
        return list(await conn.fetch(sql, params))


def test_open_all(db_url: str, tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var", database_url=db_url, dsp_open_on_certification=False)
    upgrade(db_url)

    async def prepare(platform: Platform) -> None:
        await _write(
            platform,
            _patient("a", 1),
            _patient("b", 2),
            _patient("c", 3),
            _patient("merged", 4, active=False),
            _patient("local", 5, certified=False),
        )
        assert not await _rows(platform, "SELECT 1 FROM dsp_record"), "the hook is off for this run"

    asyncio.run(_with_platform(settings, prepare))
    runner = CliRunner()
    env = {"ESANTE_VAR_DIR": str(tmp_path / "var")}
    first = runner.invoke(cli, ["dsp", "open-all", "--db", db_url, "--batch", "2"], env=env)
    assert first.exit_code == 0, first.output
    assert "3 certified identities: 3 DSPs opened, 0 had one" in first.output
    again = runner.invoke(cli, ["dsp", "open-all", "--db", db_url], env=env)
    assert again.exit_code == 0 and "0 DSPs opened, 3 had one" in again.output

    async def check(platform: Platform) -> None:
        rows = await _rows(platform, "SELECT patient_id, status FROM dsp_record ORDER BY patient_id")
        assert [tuple(r) for r in rows] == [("a", "pending"), ("b", "pending"), ("c", "pending")]
        if platform.auditor is not None:
            await platform.auditor.flush()
        events = await _rows(platform, "SELECT content FROM resource WHERE res_type = 'AuditEvent' AND is_current")
        runs = [e for e in (orjson.loads(bytes(r[0])) for r in events) if e["subtype"][0]["code"] == "open-all"]
        assert len(runs) == 2, "one AuditEvent per run"

    asyncio.run(_with_platform(Settings(var_dir=tmp_path / "var", database_url=db_url), check))
    status = runner.invoke(cli, ["dsp", "status", "a", "--db", db_url], env=env)
    assert status.exit_code == 0 and orjson.loads(status.output)["status"] == "pending"
    missing = runner.invoke(cli, ["dsp", "status", "local", "--db", db_url], env=env)
    assert missing.exit_code == 1


@pytest.mark.parametrize("audit", [True])
def test_destroy_due(db_url: str, tmp_path: Path, audit: bool) -> None:
    settings = Settings(var_dir=tmp_path / "var", database_url=db_url, dsp_refusal_window_days=0)
    upgrade(db_url)
    calls: list[str] = []

    async def blobs(session: StoreSession, patient_id: str) -> Mapping[str, int]:
        calls.append(patient_id)
        return {"blobs": 2}

    lifecycle.on_destroy(blobs)
    lifecycle.on_destroy(blobs)  # registered once

    async def prepare(platform: Platform) -> None:
        context = dsp_context(platform)
        await _write(platform, _patient("anna", 1), _patient("ben", 2), _patient("cleo", 3))
        await _write(
            platform,
            {"resourceType": "Practitioner", "id": "gp"},
            document("d1", "anna", "prescription"),
            document("d2", "anna", "consultation-report"),
            binary("d1"),
            submission_set("s1", "anna", "Practitioner/gp", ["d1", "d2"]),
            document("keep", "ben", "prescription"),
            binary("keep"),
        )
        async with platform.database.transaction() as conn:
            session = platform.store.session(conn)
            await add_grant(
                session, context, "anna", Kind.TRUSTED_CIRCLE, actor=SYSTEM_ACTOR, server="t", practitioner_id="gp"
            )
            d1 = await session.read("DocumentReference", "d1")
            assert d1 is not None and d1.content is not None
            await session.update({**orjson.loads(d1.content), "description": "v2"}, d1)  # a second version
            await session.flush()
            for patient in ("anna", "ben", "cleo"):
                await lifecycle.change(session, context, patient, "close", SYSTEM_ACTOR, "t")
        # ten years pass for Anna and Cleo (Ben's retention is not over)
        async with platform.database.transaction() as conn:
            await conn.execute("UPDATE dsp_record SET retention_until = ? WHERE patient_id IN ('anna', 'cleo')", (1,))

    asyncio.run(_with_platform(settings, prepare))
    runner = CliRunner()
    env = {"ESANTE_VAR_DIR": str(tmp_path / "var")}
    try:
        result = runner.invoke(cli, ["dsp", "destroy-due", "--db", db_url], env=env)
    finally:
        lifecycle._DESTROY_CALLBACKS.remove(blobs)
    assert result.exit_code == 0, result.output
    assert "2 DSPs destroyed" in result.output and "Patient/anna: destroyed" in result.output
    assert sorted(calls) == ["anna", "cleo"]
    again = runner.invoke(cli, ["dsp", "destroy-due", "--db", db_url], env=env)
    assert again.exit_code == 0 and "0 DSPs destroyed" in again.output

    async def check(platform: Platform) -> None:
        gone = await _rows(
            platform,
            "SELECT res_type, res_id FROM resource WHERE res_id IN ('d1', 'd2', 'bin-d1', 's1')"
            " OR res_type = 'Consent'",
        )
        assert gone == [], "every version purged"
        indexed = await _rows(
            platform, "SELECT 1 FROM idx_reference WHERE target_id = 'anna' AND res_type <> 'AuditEvent'"
        )
        assert indexed == []
        kept = await _rows(platform, "SELECT res_id FROM resource WHERE res_id IN ('keep', 'bin-keep')")
        assert len(kept) == 2, "another patient's DSP is untouched"
        statuses = dict(await _rows(platform, "SELECT patient_id, status FROM dsp_record"))
        assert statuses == {"anna": "destroyed", "ben": "closed", "cleo": "destroyed"}
        proofs = await _rows(
            platform, "SELECT patient_id, counts, digest, audit_event FROM dsp_destruction ORDER BY patient_id"
        )
        assert [p[0] for p in proofs] == ["anna", "cleo"]
        counts = orjson.loads(proofs[0][1])
        counts.pop("document-blobs", None)  # the MHD side's own callback, when installed
        assert counts.pop("notifications") == 2  # the new-document notices of d1 and d2 (dsp/notices.py)
        assert counts == {"Binary": 1, "Consent": 1, "DocumentReference": 2, "List": 1, "blobs": 2}
        assert len(proofs[0][2]) == 64 and proofs[0][3]
        assert {k: v for k, v in orjson.loads(proofs[1][1]).items() if k != "document-blobs"} == {"blobs": 2}
        async with platform.database.read() as conn:
            with pytest.raises(FhirError) as refused:
                await lifecycle.require_accepting_documents(conn, "anna")
            assert refused.value.status == 409 and refused.value.issues[0].details_code == "dsp-destroyed"
            with pytest.raises(FhirError) as missing:
                await lifecycle.require_accepting_documents(conn, "nobody")
            assert missing.value.issues[0].details_code == "dsp-missing"
        if platform.auditor is not None:
            await platform.auditor.flush()
        events = await _rows(platform, "SELECT content FROM resource WHERE res_type = 'AuditEvent' AND is_current")
        destroyed = [e for e in (orjson.loads(bytes(r[0])) for r in events) if e["subtype"][0]["code"] == "destroy"]
        assert len(destroyed) == 2 and all(e["action"] == "D" for e in destroyed)
        text = orjson.dumps(destroyed).decode()
        assert "prescription" not in text and "consultation" not in text, "no health data in the proof"

    asyncio.run(_with_platform(settings, check))
    status = runner.invoke(cli, ["dsp", "status", "anna", "--db", db_url], env=env)
    body = orjson.loads(status.output)
    assert body["status"] == "destroyed" and body["destructions"][0]["counts"]["DocumentReference"] == 2


def test_the_register_import_opens_the_dsps(db_url: str, tmp_path: Path) -> None:
    """The certified import (``esante mpi import --certified``) opens a pending DSP per new identity through the
    store hook, written in bulk at each batch's flush; a second import opens nothing more."""
    runner = CliRunner()
    env = {"ESANTE_VAR_DIR": str(tmp_path / "var")}
    population = tmp_path / "population.ndjson"
    made = runner.invoke(
        cli, ["synth", "population", "--count", "30", "--seed", "5", "--out", str(population)], env=env
    )
    assert made.exit_code == 0, made.output
    for _ in range(2):
        imported = runner.invoke(
            cli, ["mpi", "import", str(population), "--certified", "--db", db_url, "--batch", "7"], env=env
        )
        assert imported.exit_code == 0, imported.output

    async def check(platform: Platform) -> None:
        rows = await _rows(platform, "SELECT status, COUNT(*) FROM dsp_record GROUP BY status")
        assert [tuple(r) for r in rows] == [("pending", 30)]

    asyncio.run(_with_platform(Settings(var_dir=tmp_path / "var", database_url=db_url), check))
