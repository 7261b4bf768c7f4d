"""DSP documents over IHE MHD on PostgreSQL: ITI-65 ingest and ITI-67 search at scale, over HTTP.

Usage::

    python -m bench.dsp_mhd ingest [--bundles 3000] [--clients 8] [--workers 2]
    python -m bench.dsp_mhd search [--documents 100000] [--per-patient 22] [--queries 2000] [--clients 8]
                                   [--duration 30] [--workers 2] [--skip-load]

``ingest``: a fresh database, ``--patients`` certified identities (DSPs open) and an author in the HPD, then
``esante serve`` (audit on, as in production) receives ``--bundles`` ITI-65 Bundles, each one SubmissionSet, one
DocumentReference and one Binary holding a distinct 50 KB PDF/A, from ``--clients`` concurrent clients of this
machine: bundles/s, document MB/s, latency p50/p99, what was stored (resources, blobs) checked afterwards.

``search``: a fresh database loaded with ``--documents`` DocumentReferences shaped as ITI-65 leaves them (class,
confidentiality, LOINC type, dates, facility, setting, event, author, format), ``--per-patient`` each, written
through the resource store in bulk (index rows extracted in one worker process per core, COPY per table); a
physician in the trusted circle of 2,000 of the patients. Then ITI-67 searches for those patients with a realistic
mix of filters (all current documents with the total; by DSP class; since a date; by LOINC type newest first; by
matricule, chained; restricted documents), as (a) an establishment client allowed to read DSP documents by its
scopes — the DSP access rule adds nothing to its SQL — and (b) the trusted-circle physician — the DSP rule in the
SQL. One client at a time (latency p50/p99), then ``--clients`` at once for ``--duration`` seconds (req/s).

Writes bench/results/dsp_mhd.json (ingest and search sections; a run keeps the other section of the file).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.databases import reset
from bench.machine import current_commit, describe, process_cpu_seconds, process_tree, server_role
from bench.run import run_wrk
from esante.config import Settings
from esante.db.engine import create_database
from esante.demo import register_system_client
from esante.fhir.hooks import HookRegistry
from esante.fhir.index_rows import IndexRows
from esante.fhir.search.plan_choice import plan_depends_on_values
from esante.fhir.store import ResourceStore
from esante.security.keys import KeyRing
from esante.security.tokens import mint_for, principal

RESULTS = Path(__file__).resolve().parent / "results" / "dsp_mhd.json"
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
CLIENT = "bench-dsp-mhd"
MHD = "https://profiles.ihe.net/ITI/MHD"
MATRICULE = "urn:oid:1.3.182.4.4"
EHEALTH = "urn:oid:1.3.182.2.8.1"
CLASS_SYSTEM = "urn:esante:dsp:document-class"
V3 = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"
# (LOINC type, DSP class, share of the documents): laboratory results and consultations dominate a shared record
TYPES = [
    ("11502-2", "laboratory-results", 30),
    ("11488-4", "consultation-report", 20),
    ("18842-5", "discharge-letter", 8),
    ("18748-4", "imaging-report", 10),
    ("57833-6", "prescription", 12),
    ("34111-5", "emergency-summary", 4),
    ("11504-8", "operative-report", 3),
    ("56445-0", "medication-list", 4),
    ("11369-6", "vaccination-history", 3),
    ("60591-5", "patient-summary", 3),
    ("48765-2", "blood-group-allergies", 2),
    ("51855-5", "patient-provided", 1),
]
FACILITIES = ["22232009", "33022008", "708175003", "394761003", "264358009"]
SETTINGS = ["394802001", "394579002", "408478003", "394537008", "394592004"]
AUTHORS = 200
GRANTED = 2000
console = Console()


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 2)

    return {"p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99), "mean_ms": round(statistics.fmean(ordered), 2)}


def matricule(i: int) -> str:
    from esante.identifiers.matricule import make_matricule

    return make_matricule(f"{1930 + i % 80}{1 + i % 12:02d}{1 + i % 28:02d}", i // 1000 % 1000)


def _patient(i: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": f"p{i}",
        "meta": {"tag": [{"system": "urn:esante:identity-level", "code": "certified"}]},
        "active": True,
        "identifier": [{"system": MATRICULE, "value": matricule(i)}],
        "name": [{"family": f"Bench{i}", "given": ["Patient"]}],
        "gender": "female" if i % 2 else "male",
        "birthDate": f"{1930 + i % 80}-{1 + i % 12:02d}-{1 + i % 28:02d}",
    }


def _practitioner(pid: str, n: int) -> dict[str, Any]:
    from esante.identifiers.ehealth_id import make_ehealth_id

    return {
        "resourceType": "Practitioner",
        "id": pid,
        "active": True,
        "identifier": [{"system": EHEALTH, "value": make_ehealth_id(f"{287_000_000 + n:09d}")}],
        "name": [{"family": f"Author{n}", "given": ["Doc"]}],
        "qualification": [{"code": {"coding": [{"system": "urn:esante:hpd:profession", "code": "medecin"}]}}],
    }


async def _connect(url: str) -> Any:
    database = create_database(url, pool_size=2)
    await database.connect()
    return database


async def _seed_people(settings: Settings, patients: int) -> None:
    """Certified identities (their DSPs opened by the DSP's hook, active at once) and the authors, through the
    platform's store and hooks as the register and directory imports write them."""
    from esante.app import build_platform

    platform = build_platform(settings)
    await platform.database.connect()
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("identities", total=patients)
            for start in range(0, patients, 1000):
                async with platform.database.transaction() as conn:
                    session = platform.store.session(conn)
                    for i in range(start, min(start + 1000, patients)):
                        await session.create(_patient(i), res_id=f"p{i}")
                    await session.flush()
                progress.advance(task, min(1000, patients - start))
        async with platform.database.transaction() as conn:
            session = platform.store.session(conn)
            for n in range(AUTHORS):
                await session.create(_practitioner(f"a{n}", n), res_id=f"a{n}")
            await session.create(_practitioner("gp", AUTHORS), res_id="gp")
            await session.flush()
    finally:
        await platform.database.close()


def _token(settings: Settings, who: str, scope: str | None = None) -> str:
    return mint_for(settings, KeyRing.load_or_create(settings), principal(who), scope=scope, ttl=7200)


def _start_server(url: str, port: int, workers: int, data_dir: Path, **env: str) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "ESANTE_LOG_LEVEL": "warning",
        "ESANTE_DB_POOL_SIZE": "4",
        "ESANTE_VAR_DIR": str(data_dir),
        "ESANTE_AUDIT_ENABLED": "true",
        **env,
    }
    cmd = [sys.executable, "-m", "esante.cli", "serve", "--db", url, "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(cmd, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start: " + (proc.stderr.read().decode() if proc.stderr else ""))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _save(section: str, values: dict[str, Any]) -> None:
    """Write one section of the results, with the load average then (the machine is shared: other work shows)."""
    values["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    current = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"benchmark": "dsp_mhd"}
    current[section] = values
    current["machine"] = describe()
    RESULTS.write_text(json.dumps(current, indent=2, ensure_ascii=False) + "\n")


def _append_run(section: str, results: dict[str, Any], labels: dict[str, str], args: argparse.Namespace) -> None:
    """One line per search run in ``section`` (the figures move from run to run on these shared machines: the
    docs quote the series, not one run), with the commit measured and the machine's speed that day."""
    current = json.loads(RESULTS.read_text())
    commit = current_commit()
    run: dict[str, Any] = {
        "time_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "commit": commit,
        "note": args.note,
        "python_loop_ms": current.get("machine", {}).get("python_loop_ms"),
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }
    for who, label in labels.items():
        name = "physician" if who == "physician" else "establishment"
        run[f"{name}_sequential"] = {k: results[label]["sequential"][k] for k in ("p50_ms", "p99_ms")}
        run[f"{name}_{args.clients}_clients_rps"] = results[label][f"{args.clients}_clients"]["requests_per_second"]
        for key in ("wrk_1_connections", f"wrk_{args.clients}_connections"):
            if key in results[label]:
                lean = results[label][key]
                run[f"{name}_{key}"] = {k: lean[k] for k in ("p50_ms", "p99_ms", "req_per_s", "non_2xx")}
    current.setdefault(section, []).append(run)
    RESULTS.write_text(json.dumps(current, indent=2, ensure_ascii=False) + "\n")


# ------------------------------------------------------------------------------------------------- ingest


def pdf_document(rng: random.Random, size: int = 50_000) -> bytes:
    """A distinct PDF/A-declaring document of ``size`` bytes (random content: distinct blobs, incompressible)."""
    head = (
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Metadata /Subtype /XML >> stream\n"
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/" pdfaid:part="1"/></rdf:RDF></x:xmpmeta>'
        b"\nendstream\n2 0 obj << /Length 0 >> stream\n"
    )
    tail = b"\nendstream\n%%EOF"
    return head + rng.randbytes(size - len(head) - len(tail)) + tail


def provide_bundle(rng: random.Random, patient: int, author: int) -> tuple[bytes, int]:
    """An ITI-65 Bundle (Minimal metadata with type, class and confidentiality) and its document's size."""
    data = pdf_document(rng)
    code, _class, _share = rng.choices(TYPES, weights=[t[2] for t in TYPES])[0]
    doc_url, bin_url = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
    subject = {"reference": f"Patient/p{patient}"}
    document = {
        "resourceType": "DocumentReference",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "status": "current",
        "type": {"coding": [{"system": LOINC, "code": code}]},
        "subject": subject,
        "date": "2026-03-01T10:00:00+01:00",
        "author": [{"reference": f"Practitioner/a{author}"}],
        "securityLabel": [{"coding": [{"system": V3, "code": "N"}]}],
        "content": [
            {
                "attachment": {
                    "contentType": "application/pdf",
                    "url": bin_url,
                    "size": len(data),
                    "hash": base64.b64encode(hashlib.sha1(data).digest()).decode(),
                    "creation": "2026-03-01T09:30:00+01:00",
                },
                "format": {"system": "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode",
                           "code": "urn:ihe:iti:xds:2017:mimeTypeSufficient"},
            }
        ],
        "context": {"facilityType": {"coding": [{"system": SCT, "code": rng.choice(FACILITIES)}]},
                    "practiceSetting": {"coding": [{"system": SCT, "code": rng.choice(SETTINGS)}]}},
    }  # fmt: skip
    submission_set = {
        "resourceType": "List",
        "status": "current",
        "mode": "working",
        "code": {"coding": [{"system": f"{MHD}/CodeSystem/MHDlistTypes", "code": "submissionset"}]},
        "extension": [{"url": f"{MHD}/StructureDefinition/ihe-sourceId", "valueIdentifier": {"value": "urn:oid:1.2"}}],
        "subject": subject,
        "date": "2026-03-01T10:00:00+01:00",
        "entry": [{"item": {"reference": doc_url}}],
    }
    bundle = {
        "resourceType": "Bundle",
        "meta": {"profile": [f"{MHD}/StructureDefinition/IHE.MHD.Minimal.ProvideBundle"]},
        "type": "transaction",
        "entry": [
            {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": submission_set,
             "request": {"method": "POST", "url": "List"}},
            {"fullUrl": doc_url, "resource": document, "request": {"method": "POST", "url": "DocumentReference"}},
            {"fullUrl": bin_url, "resource": {"resourceType": "Binary", "contentType": "application/pdf",
                                              "data": base64.b64encode(data).decode()},
             "request": {"method": "POST", "url": "Binary"}},
        ],
    }  # fmt: skip
    return json.dumps(bundle).encode(), len(data)


async def _send(fhir: str, token: str, bodies: list[bytes], clients: int) -> tuple[list[float], list[int], float]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    latencies: list[float] = []
    statuses: list[int] = []
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("ITI-65", total=len(bodies))

        async def worker(http: httpx.AsyncClient) -> None:
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                response = await http.post(fhir, content=body, headers=headers)
                latencies.append((time.perf_counter() - started) * 1000)
                statuses.append(response.status_code)
                progress.advance(task)

        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(timeout=120, limits=limits) as http:
            started = time.perf_counter()
            await asyncio.gather(*(worker(http) for _ in range(clients)))
            elapsed = time.perf_counter() - started
    return latencies, statuses, elapsed


def ingest(args: argparse.Namespace) -> None:
    url = args.admin.rsplit("/", 1)[0] + "/bench_dsp_mhd_ingest"
    subprocess.run(["psql", args.admin, "-qc", "DROP DATABASE IF EXISTS bench_dsp_mhd_ingest"], check=True)
    subprocess.run(["psql", args.admin, "-qc", "CREATE DATABASE bench_dsp_mhd_ingest"], check=True)
    reset(url)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-dsp-mhd-"))
    settings = Settings(
        database_url=url, var_dir=data_dir, port=args.port, audit_enabled=False, warm_up=False,
        dsp_refusal_window_days=0,
    )  # fmt: skip
    asyncio.run(_seed_people(settings, args.patients))

    async def client_token() -> str:
        database = await _connect(url)
        try:
            await register_system_client(database, CLIENT, "bench", "system/*.cruds", kind="hospital")
        finally:
            await database.close()
        return _token(settings, f"system:{CLIENT}", "system/*.cruds")

    token = asyncio.run(client_token())
    rng = random.Random(65)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("bundles", total=args.bundles)
        bodies, sizes = [], []
        for _ in range(args.bundles):
            body, size = provide_bundle(rng, rng.randrange(args.patients), rng.randrange(AUTHORS))
            bodies.append(body)
            sizes.append(size)
            progress.advance(task)
    server = _start_server(url, args.port, args.workers, data_dir)
    try:
        fhir = f"http://127.0.0.1:{args.port}/fhir"
        warm, _ = bodies[:50], sizes[:50]
        asyncio.run(_send(fhir, token, warm, args.clients))
        latencies, statuses, elapsed = asyncio.run(_send(fhir, token, bodies[50:], args.clients))
    finally:
        _stop(server)
    sent = len(bodies) - 50
    document_mb = sum(sizes[50:]) / 1e6
    request_mb = sum(len(b) for b in bodies[50:]) / 1e6

    async def stored() -> dict[str, int]:
        database = await _connect(url)
        try:
            async with database.read() as conn:
                documents = await conn.fetchval(
                    "SELECT count(*) FROM resource WHERE res_type = 'DocumentReference' AND is_current"
                )
                links = await conn.fetchval("SELECT count(*) FROM dsp_document_blob")
        finally:
            await database.close()
        return {"documents": int(documents), "blob_links": int(links)}

    counts = asyncio.run(stored())
    blobs = sum(1 for _ in (data_dir / "blobs" / "objects").glob("*/*/*"))
    result = {
        "bundles": sent,
        "clients": args.clients,
        "server_workers": args.workers,
        "ok": statuses.count(200),
        "errors": {str(s): statuses.count(s) for s in set(statuses) if s != 200},
        "seconds": round(elapsed, 1),
        "bundles_per_second": round(sent / elapsed, 1),
        "document_mb_per_second": round(document_mb / elapsed, 2),
        "request_mb_per_second": round(request_mb / elapsed, 2),
        "document_bytes": 50_000,
        "latency": _percentiles(latencies),
        "stored": {**counts, "blobs_on_disk": blobs},
        "conditions": "PostgreSQL; esante serve with audit on; one SubmissionSet + DocumentReference + Binary "
        "(distinct 50 KB PDF/A) per Bundle; patients and author resolved, DSP state, uniqueId, hash and size "
        "checked, document encrypted into the blob store on local disk; clients on the same 2-core machine",
    }
    _save("ingest", result)
    table = Table("bundles", "clients", "bundles/s", "document MB/s", "p50 ms", "p99 ms", "errors")
    table.add_row(
        str(sent), str(args.clients), str(result["bundles_per_second"]), str(result["document_mb_per_second"]),
        str(result["latency"]["p50_ms"]), str(result["latency"]["p99_ms"]), str(result["errors"]),
    )  # fmt: skip
    console.print(table)
    console.print(result["stored"])


# ------------------------------------------------------------------------------------------------- search


def _document(n: int, patient: int) -> dict[str, Any]:
    """The n-th document, shaped as ITI-65 stores it (class coding, confidentiality, literal author)."""
    rng = random.Random(n)
    code, doc_class, _share = rng.choices(TYPES, weights=[t[2] for t in TYPES])[0]
    year = 2012 + rng.randrange(15)
    day = f"{year}-{1 + rng.randrange(12):02d}-{1 + rng.randrange(28):02d}"
    level = "R" if rng.random() < 0.1 else "N"
    return {
        "resourceType": "DocumentReference",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:2.25.{n}"},
        "status": "superseded" if rng.random() < 0.03 else "current",
        "type": {"coding": [{"system": LOINC, "code": code}]},
        "category": [{"coding": [{"system": CLASS_SYSTEM, "code": doc_class}]}],
        "subject": {"reference": f"Patient/p{patient}"},
        "date": f"{day}T10:00:00Z",
        "author": [{"reference": f"Practitioner/a{rng.randrange(AUTHORS)}"}],
        "securityLabel": [{"coding": [{"system": V3, "code": level}]}],
        "content": [
            {
                "attachment": {"contentType": "application/pdf", "url": f"Binary/b{n}", "size": 50_000,
                               "hash": "Ck1VqNd45QIvq3AZd8XYQLvEhtA=", "creation": f"{day}T09:00:00Z"},
                "format": {"system": "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode",
                           "code": "urn:ihe:iti:xds:2017:mimeTypeSufficient"},
            }
        ],
        "context": {
            "period": {"start": f"{day}T08:00:00Z", "end": f"{day}T09:00:00Z"},
            "facilityType": {"coding": [{"system": SCT, "code": rng.choice(FACILITIES)}]},
            "practiceSetting": {"coding": [{"system": SCT, "code": rng.choice(SETTINGS)}]},
        },
    }  # fmt: skip


def _prepare_chunk(start: int, stop: int, per_patient: int) -> list[tuple[dict[str, Any], IndexRows]]:
    """Documents start..stop-1 with their index rows (run in a worker process)."""
    from esante.fhir.indexing import extract_index_rows

    out = []
    for n in range(start, stop):
        document = _document(n, n // per_patient)
        out.append((document, extract_index_rows(document)))
    return out


async def _bulk_documents(url: str, documents: int, per_patient: int, workers: int) -> float:
    """Write the documents through the resource store (no hooks: they are known valid, their DSPs open), in
    transactions of 5,000 (COPY per table)."""
    database = create_database(url, pool_size=2)
    await database.connect()
    store = ResourceStore(database, HookRegistry())
    chunk = 5000
    started = time.perf_counter()
    try:
        with ProcessPoolExecutor(workers) as pool, Progress(console=console, transient=True) as progress:
            task = progress.add_task("documents", total=documents)
            loop = asyncio.get_running_loop()
            pending = [
                loop.run_in_executor(pool, _prepare_chunk, s, min(s + chunk, documents), per_patient)
                for s in range(0, min(documents, chunk * workers * 2), chunk)
            ]
            next_start = min(documents, chunk * workers * 2)
            while pending:
                prepared = await pending.pop(0)
                if next_start < documents:
                    stop = min(next_start + chunk, documents)
                    pending.append(loop.run_in_executor(pool, _prepare_chunk, next_start, stop, per_patient))
                    next_start = stop
                async with database.transaction() as conn:
                    session = store.session(conn)
                    await session.reserve_rids(len(prepared))
                    for document, rows in prepared:
                        await session.create(document, client_id=False, index_rows=rows)
                    await session.flush()
                progress.advance(task, len(prepared))
    finally:
        await database.close()
    return time.perf_counter() - started


async def _patients_bulk(url: str, patients: int) -> None:
    """Certified identities in bulk (COPY) with their DSP records open, and the authors."""
    database = create_database(url, pool_size=2)
    await database.connect()
    store = ResourceStore(database, HookRegistry())
    now = int(time.time())
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("identities", total=patients)
            for start in range(0, patients, 5000):
                async with database.transaction() as conn:
                    session = store.session(conn)
                    ids = range(start, min(start + 5000, patients))
                    for i in ids:
                        await session.create(_patient(i), res_id=f"p{i}", client_id=False)
                    await session.flush()
                    await conn.executemany(
                        "INSERT INTO dsp_record (patient_id, status, opened_at, window_ends_at, activated_at,"
                        " updated_at) VALUES (?, 'active', ?, ?, ?, ?)",
                        [(f"p{i}", now, now, now, now) for i in ids],
                    )
                progress.advance(task, len(ids))
        async with database.transaction() as conn:
            session = store.session(conn)
            for n in range(AUTHORS):
                await session.create(_practitioner(f"a{n}", n), res_id=f"a{n}", client_id=False)
            await session.create(_practitioner("gp", AUTHORS), res_id="gp", client_id=False)
            await session.flush()
    finally:
        await database.close()


async def _grants(settings: Settings, patients: int) -> None:
    """The physician ``gp`` in the trusted circle of the first 2,000 patients (the DSP's own grant writer)."""
    from esante.app import build_platform
    from esante.dsp.audit import SYSTEM_ACTOR
    from esante.dsp.context import dsp_context
    from esante.dsp.grants import add_grant
    from esante.dsp.grants_model import Kind

    platform = build_platform(settings)
    await platform.database.connect()
    try:
        context = dsp_context(platform)
        async with platform.database.transaction() as conn:
            session = platform.store.session(conn)
            for i in range(min(GRANTED, patients)):
                await add_grant(session, context, f"p{i}", Kind.TRUSTED_CIRCLE, actor=SYSTEM_ACTOR, server="bench",
                                practitioner_id="gp")  # fmt: skip
            await session.flush()
    finally:
        await platform.database.close()


def _queries(rng: random.Random, patients: int) -> list[str]:
    """ITI-67 requests for granted patients: the mix a professional's software sends when opening a record."""
    mix: list[tuple[int, Any]] = [
        (35, lambda p: f"patient=Patient/p{p}&status=current"),
        (20, lambda p: f"patient=Patient/p{p}&status=current&category={CLASS_SYSTEM}|"
                       + rng.choice(["laboratory-results", "consultation-report", "imaging-report"])),
        (15, lambda p: f"patient=Patient/p{p}&status=current&date=ge{2020 + rng.randrange(6)}-01-01"),
        (10, lambda p: f"patient=Patient/p{p}&type={LOINC}|{rng.choice(TYPES)[0]}&_sort=-date"),
        (10, lambda p: f"patient.identifier={MATRICULE}|{matricule(p)}&status=current"),
        (5, lambda p: f"patient=Patient/p{p}&security-label={V3}|R"),
        (5, lambda p: f"patient=Patient/p{p}&status=current&_sort=-date&_count=10"),
    ]  # fmt: skip
    weights = [w for w, _ in mix]
    out = []
    for _ in range(5000):
        make = rng.choices([m for _, m in mix], weights=weights)[0]
        out.append(make(rng.randrange(min(GRANTED, patients))))
    return out


async def _sequential(fhir: str, tokens: dict[str, str], queries: list[str]) -> dict[str, tuple[list[float], float]]:
    """Each query once per caller, the callers alternating (a load that changes meanwhile weighs on both alike)."""
    latencies: dict[str, list[float]] = {who: [] for who in tokens}
    found = dict.fromkeys(tokens, 0)
    async with httpx.AsyncClient(timeout=60) as http:
        for query in queries:
            for who, token in tokens.items():
                started = time.perf_counter()
                response = await http.get(
                    f"{fhir}/DocumentReference?{query}", headers={"Authorization": f"Bearer {token}"}
                )
                latencies[who].append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
                found[who] += len(response.json().get("entry", []))
    return {who: (latencies[who], found[who] / len(queries)) for who in tokens}


async def _concurrent(fhir: str, token: str, queries: list[str], clients: int, duration: float) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration

    async def worker(http: httpx.AsyncClient, offset: int) -> None:
        nonlocal errors
        i = offset
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            response = await http.get(f"{fhir}/DocumentReference?{queries[i % len(queries)]}", headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            errors += response.status_code != 200
            i += clients

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(worker(http, k) for k in range(clients)))
        elapsed = time.perf_counter() - started
    return {"requests_per_second": round(len(latencies) / elapsed, 1), "errors": errors, **_percentiles(latencies)}


async def _in_process(settings: Settings, queries: list[str]) -> dict[str, dict[str, float]]:
    """The same searches through the FHIR service without HTTP, token check and audit: the SQL's own cost (the
    two callers alternating)."""
    from esante.app import build_platform
    from esante.dsp.access_caller import professional_attributes
    from esante.dsp.context import dsp_context
    from esante.fhir.context import RequestContext
    from esante.security.pdp.rules.professional import RIGHT_TO_PRACTISE
    from esante.security.policy import Caller

    platform = build_platform(settings)
    await platform.database.connect()
    try:
        async with platform.database.read() as conn:
            attributes = await professional_attributes(conn, dsp_context(platform), "gp", None)
        attributes[RIGHT_TO_PRACTISE] = "active"
        callers = {
            "system": Caller("system", CLIENT, ("system/*.rs",), attributes={"client_id": CLIENT}),
            "physician": Caller("professional", "gp", ("user/*.rs",), attributes=attributes),
        }
        times: dict[str, list[float]] = {who: [] for who in callers}
        for query in queries:
            pairs = [(k, v) for k, _, v in (item.partition("=") for item in query.split("&"))]
            for who, caller in callers.items():
                started = time.perf_counter()
                per_execution = plan_depends_on_values(["DocumentReference"], pairs)  # as the router does
                async with platform.database.read(search=per_execution) as conn:
                    session = platform.store.session(conn, caller)
                    await platform.service.search(session, RequestContext(caller=caller), "DocumentReference", pairs)
                times[who].append((time.perf_counter() - started) * 1000)
        return {who: _percentiles(values[100:]) for who, values in times.items()}
    finally:
        await platform.database.close()


def search(args: argparse.Namespace) -> None:
    name = "bench_dsp_mhd_search"
    url = args.admin.rsplit("/", 1)[0] + f"/{name}"
    patients = max(1, args.documents // args.per_patient)
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="bench-dsp-mhd-search-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        database_url=url, var_dir=data_dir, port=args.port, audit_enabled=False, warm_up=False,
        dsp_refusal_window_days=0, dsp_establishment_reads=True, db_pool_size=2,
    )  # fmt: skip
    load_seconds = None
    if not args.skip_load:
        started = time.perf_counter()
        if not args.from_grants:  # (--from-grants: the documents are loaded, a run stopped after them)
            subprocess.run(["psql", args.admin, "-qc", f"DROP DATABASE IF EXISTS {name}"], check=True)
            subprocess.run(["psql", args.admin, "-qc", f"CREATE DATABASE {name}"], check=True)
            reset(url)
            asyncio.run(_patients_bulk(url, patients))
            seconds = asyncio.run(_bulk_documents(url, args.documents, args.per_patient, args.load_workers))
            rate = args.documents / seconds
            console.print(f"{args.documents:,} documents written in {seconds:.0f} s ({rate:,.0f}/s)")
            _save(
                f"load_{args.documents}",
                {"documents": args.documents, "seconds": round(seconds), "per_second": round(rate)},
            )
        asyncio.run(_grants(settings, patients))
        # the visibility map and statistics a loaded production database has (index-only scans, plans)
        subprocess.run(["psql", url, "-qc", "VACUUM ANALYZE"], check=True)
        # the load's dirty pages written now, not by a checkpoint in the middle of the first measurement
        subprocess.run(["psql", url, "-qc", "CHECKPOINT"], check=True)
        load_seconds = round(time.perf_counter() - started, 1)

    async def tokens() -> dict[str, str]:
        database = await _connect(url)
        try:
            async with database.transaction() as conn:  # a re-run (--skip-load) registers it again
                await conn.execute("DELETE FROM oauth_client WHERE client_id = ?", (CLIENT,))
            await register_system_client(database, CLIENT, "bench", "system/*.rs", kind="hospital")
            async with database.read() as conn:
                size = await conn.fetchval("SELECT pg_database_size(current_database())")
                count = await conn.fetchval(
                    "SELECT count(*) FROM resource WHERE res_type = 'DocumentReference' AND is_current"
                )
        finally:
            await database.close()
        from esante.identifiers.ehealth_id import make_ehealth_id

        return {
            "size": str(size),
            "count": str(count),
            "system": _token(settings, f"system:{CLIENT}", "system/*.rs"),
            "physician": _token(settings, f"professional:{make_ehealth_id(f'{287_000_000 + AUTHORS:09d}')}"),
        }

    made = asyncio.run(tokens())
    rng = random.Random(67)
    queries = _queries(rng, patients)
    (data_dir / "dsp_queries.txt").write_text("\n".join(queries) + "\n")  # for wrk (bench/wrk/dsp_search.lua)
    server = _start_server(url, args.port, args.workers, data_dir, ESANTE_DSP_ESTABLISHMENT_READS="true")
    results: dict[str, Any] = {}
    labels = {"system": "establishment (no DSP rule in the SQL)", "physician": "trusted-circle physician (DSP rule)"}
    callers = {who: made[who] for who in labels}
    try:
        fhir = f"http://127.0.0.1:{args.port}/fhir"
        asyncio.run(_sequential(fhir, callers, queries[:200]))  # warm
        # each worker indexes the MPI's certified identities in the background after start-up (esante.app warm-up):
        # measure the served steady state, not that one-off load
        time.sleep(args.settle)
        asyncio.run(_sequential(fhir, callers, queries[:200]))
        processes = process_tree(server.pid)[1:]
        cpu_before = {pid: process_cpu_seconds([pid]) for pid in processes}
        sequential = asyncio.run(_sequential(fhir, callers, queries[: args.queries]))
        # which process served the sequential client's one connection, and the CPU each process spent per search
        process_cpu = [
            {
                "pid": pid,
                "role": server_role(pid),
                "cpu_ms": round((process_cpu_seconds([pid]) - cpu_before[pid]) * 1000 / (2 * args.queries), 3),
            }
            for pid in processes
        ]
        for who, label in labels.items():
            latencies, per_search = sequential[who]
            by_shape: dict[str, list[float]] = {}
            for query, latency in zip(queries[: args.queries], latencies, strict=True):
                shape = "&".join(sorted({item.partition("=")[0] for item in query.split("&")}))
                by_shape.setdefault(shape, []).append(latency)
            loaded = asyncio.run(_concurrent(fhir, made[who], queries, args.clients, args.duration))
            # the same mix from wrk (C, a few % of one core): the server's latency without the Python client's
            # own CPU on this 2-core machine (httpx: ~1 ms a request, competing with the server for the cores)
            lean = {
                f"wrk_{n}_connections": run_wrk("dsp_search.lua", args.port, round(args.wrk_duration), n, data_dir,
                                                made[who])
                for n in (1, args.clients)
            }  # fmt: skip
            results[label] = {
                "sequential": {**_percentiles(latencies), "documents_per_search": round(per_search, 2)},
                "sequential_by_query_shape": {
                    shape: {"n": len(values), **_percentiles(values)} for shape, values in sorted(by_shape.items())
                },
                f"{args.clients}_clients": loaded,
                **lean,
            }
            console.print(label, results[label])
    finally:
        _stop(server)
    in_process = asyncio.run(_in_process(settings, queries[: args.queries]))
    console.print("in process (SQL, no HTTP):", in_process)
    result = {
        "documents": int(made["count"]),
        "patients": patients,
        "per_patient": args.per_patient,
        "database_gb": round(int(made["size"]) / 1e9, 2),
        "load_seconds": load_seconds,
        "queries": args.queries,
        "server_workers": args.workers,
        "mix": "35% all current (page 20 + total), 20% by DSP class, 15% since a date, 10% by LOINC type newest "
        "first, 10% by matricule (chained), 5% restricted, 5% newest 10",
        "results": results,
        "in_process": {labels[who]: values for who, values in in_process.items()},
        "conditions": "PostgreSQL; esante serve with audit on; tokens checked on every request; client on the same "
        "2-core machine; in_process: the FHIR service's search without HTTP, token check and audit",
    }
    result["sequential_cpu_ms_per_search_by_process"] = process_cpu
    _save(f"search_{args.documents}", result)
    _append_run(f"search_{args.documents}_runs", results, labels, args)
    table = Table("caller", "p50 ms", "p99 ms", f"req/s ({args.clients} clients)", f"p99 ms ({args.clients})",
                  "wrk 1 conn p50/p99 ms", f"wrk {args.clients} conn req/s")  # fmt: skip
    for label, values in results.items():
        loaded = values[f"{args.clients}_clients"]
        one, many = values["wrk_1_connections"], values[f"wrk_{args.clients}_connections"]
        table.add_row(
            label, str(values["sequential"]["p50_ms"]), str(values["sequential"]["p99_ms"]),
            str(loaded["requests_per_second"]), str(loaded["p99_ms"]),
            f"{one['p50_ms']:.2f} / {one['p99_ms']:.2f}", str(many["req_per_s"]),
        )  # fmt: skip
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admin", default=ADMIN)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("ingest")
    one.add_argument("--bundles", type=int, default=3000)
    one.add_argument("--patients", type=int, default=2000)
    one.add_argument("--clients", type=int, default=8)
    two = sub.add_parser("search")
    two.add_argument("--documents", type=int, default=100_000)
    two.add_argument("--per-patient", type=int, default=22)
    two.add_argument("--queries", type=int, default=2000)
    two.add_argument("--clients", type=int, default=8)
    two.add_argument("--duration", type=float, default=30)
    two.add_argument("--wrk-duration", type=float, default=20, help="seconds of each wrk run (1 and --clients)")
    two.add_argument("--settle", type=float, default=30, help="seconds to let the server's start-up work finish")
    two.add_argument("--load-workers", type=int, default=os.cpu_count() or 2)
    two.add_argument("--data-dir", default="")
    two.add_argument("--skip-load", action="store_true", help="measure the database loaded by an earlier run")
    two.add_argument("--from-grants", action="store_true", help="the documents are loaded: grants, vacuum, measure")
    two.add_argument("--note", default="", help="what this run measures (kept with its line in the runs list)")
    args = parser.parse_args()
    if args.command == "ingest":
        ingest(args)
    else:
        search(args)


if __name__ == "__main__":
    main()
