"""The audit trail chained by a process of its own (``esante serve`` on PostgreSQL): the workers only journal, the
chain process drains the journal into the verifiable chain, readers still see every event, and a chain process
that dies is replaced."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from esante.app import build_platform, create_app
from esante.config import Settings
from esante.db.engine import create_database
from esante.security.audit_chain_process import chain_forever
from tests.auth import bearer, register_client
from tests.conftest import PG_URL, empty_tables, reset_schema
from tests.live_server import serve_command_env


async def _counts(url: str) -> tuple[int, int]:
    database = create_database(url, pool_size=1)
    await database.connect()
    try:
        async with database.read() as conn:
            journal = int(await conn.fetchval("SELECT COUNT(*) FROM audit_journal"))
            chained = int(await conn.fetchval("SELECT COUNT(*) FROM audit_chain"))
        return journal, chained
    finally:
        await database.close()


async def test_workers_journal_and_the_chain_process_chains(db_url: str, tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path, database_url=db_url, audit_background_chain=False)
    worker = build_platform(settings)
    await worker.database.connect()
    await register_client(worker.database)
    try:
        app = create_app(settings, worker)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=bearer(settings)
        ) as http:
            for n in range(5):
                response = await http.post("/fhir/Patient", json={"resourceType": "Patient", "id": f"x{n}"})
                assert response.status_code == 201, response.text
            # journaled (durable before each answer), and this process started no chainer of its own
            assert worker.auditor is not None and worker.auditor._chainer is None

            stop = asyncio.Event()
            chainer = asyncio.create_task(chain_forever(settings, stop))
            for _ in range(100):
                journal, chained = await _counts(db_url)
                if journal == 0:
                    break
                await asyncio.sleep(0.1)
            assert journal == 0 and chained >= 5
            # a reader of the trail sees its own request's predecessors, chained (the worker flushes before reading)
            events = await http.get("/fhir/AuditEvent", params={"_count": "100", "_total": "accurate"})
            assert events.status_code == 200 and events.json()["total"] >= 5
            stop.set()
            await asyncio.wait_for(chainer, 10)
        assert worker.auditor is not None
        verified = await worker.auditor.trail.verify(worker.database)
        assert verified.ok, verified.reason
    finally:
        if worker.auditor is not None:
            await worker.auditor.close()
        await worker.database.close()


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "multiprocessing.spawn" in line]


@pytest.mark.skipif(not PG_URL.startswith("postgres"), reason="the chain process runs with PostgreSQL")
def test_served_platform_runs_and_restarts_its_chain_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reset_schema(PG_URL)
    empty_tables(PG_URL)
    port = serve_command_env(monkeypatch, tmp_path / "var")
    monkeypatch.delenv("ESANTE_AUDIT_BACKGROUND_CHAIN", raising=False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "esante.cli", "serve", "--db", PG_URL],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/fhir/Patient"

    def refused(count: int) -> None:  # an unauthenticated request is answered 401, and audited
        for _ in range(count):
            assert httpx.get(url).status_code == 401

    def chained_at_least(count: int) -> None:
        for _ in range(150):
            journal, chained = asyncio.run(_counts(PG_URL))
            if journal == 0 and chained >= count:
                return
            time.sleep(0.1)
        raise AssertionError(f"not chained: journal {journal}, chain {chained}")

    try:
        for _ in range(200):
            try:
                httpx.get(f"http://127.0.0.1:{port}/fhir/metadata")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        refused(4)
        chained_at_least(4)
        (chain_pid,) = _children(proc.pid)
        os.kill(chain_pid, signal.SIGKILL)  # the chain process dies; the server goes on answering
        refused(3)
        chained_at_least(7)  # ... and a new chain process chained what was journaled meanwhile
        (replacement,) = _children(proc.pid)
        assert replacement != chain_pid
        chain_pid = replacement
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    for _ in range(50):  # the chain process ends with the server (it watches its parent)
        if not Path(f"/proc/{chain_pid}").exists():
            break
        time.sleep(0.1)
    assert not Path(f"/proc/{chain_pid}").exists()
