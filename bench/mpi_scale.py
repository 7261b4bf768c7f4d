"""The MPI at national scale: a synthetic Luxembourg register of 1.2 M certified identities, imported and matched.

Usage: ``python -m bench.mpi_scale [--count 1200000] [--db postgresql://postgres@127.0.0.1:5432/bench_mpi]``

Phases (one function each, so more can be added — the HTTP ``$match`` latency against the same database):

1. :func:`generate` — the register (``esante.synth``, seed 2024) as NDJSON, plus establishment feed records and
   their ground truth in the same pass;
2. :func:`import_register` — into a freshly migrated PostgreSQL database (created if missing) through the code of
   ``esante mpi import --certified`` (:class:`CertifiedImporter`): first import, then the idempotent re-import,
   rates and peak RSS (the writer and its preparation workers);
3. :func:`load_certified` — every current certified identity read back from the database, as matching features
   (``record_from_fhir`` + ``prepare``): time and RSS growth;
4. :func:`estimate` — EM (``estimate_parameters``) on a random sample of the register: its cost at this scale
   (the set is not used: EM on a register without duplicates has no matches to learn from; the look-ups and
   duplicates use the platform's packaged parameter set, as a fresh platform does);
5. :func:`build_index` — the in-memory :class:`CandidateIndex` of all of them (prior 1/N): time and RSS growth;
6. :func:`lookups` — feed records looked up in the pure index (prepare + lookup, as ``$match`` does after
   parsing): p50/p99/max latency, and how often the best candidate is the true person;
7. :func:`duplicates` — ``find_duplicates`` over the whole register as ``esante mpi find-duplicates`` runs it
   (duplicate prior, one process per core; target: at most 15 minutes).

``--skip-import`` measures phases 3-7 against a register already imported (same count and seed).

The database is left populated for the next benchmarks. Results: bench/results/mpi_scale.json and a table. The
load average is recorded before each phase: on the shared 2-core machine other sessions' tests run beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import json
import os
import random
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.databases import reset
from bench.machine import describe
from esante.app import build_platform
from esante.config import Settings
from esante.mpi.certified_import import CertifiedImporter
from esante.mpi.duplicates import duplicate_prior
from esante.mpi.match_parameters import default_parameters
from esante.mpi.matching import (
    AUTO_LINK,
    CandidateIndex,
    Features,
    ParameterSet,
    RecordError,
    estimate_parameters,
    find_duplicates,
    prepare,
    record_from_fhir,
)
from esante.mpi.model import MATRICULE_SYSTEM, IdentityLevel
from esante.mpi.people import level_of
from esante.mpi.sources import read_file
from esante.synth import FeedConfig, PopulationConfig, write_population

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "mpi_scale.json"
DEFAULT_URL = os.environ.get("ESANTE_BENCH_MPI_URL", "postgresql://postgres@127.0.0.1:5432/bench_mpi")
SEED = 2024
console = Console()


# -- measuring -------------------------------------------------------------------------------------------------------
def rss_mb() -> float:
    """Resident memory of this process now (ru_maxrss is only the peak)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> dict[str, float]:
    """Peak RSS of this process and of its largest child (the import's preparation workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"process": round(own, 1), "largest_worker": round(children, 1)}


def conditions() -> dict[str, Any]:
    load1, load5, _ = os.getloadavg()
    return {"load_1min": round(load1, 2), "load_5min": round(load5, 2)}


def bar(description: str) -> Progress:
    return Progress(
        TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True
    )


@contextmanager
def phase(name: str, into: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Time a phase and note the machine's load before it; the phase fills in its own figures."""
    figures: dict[str, Any] = {"conditions_before": conditions()}
    started = time.perf_counter()
    yield figures
    figures["seconds"] = round(time.perf_counter() - started, 2)
    into[name] = figures
    console.print(f"[bold]{name}[/bold] {json.dumps({k: v for k, v in figures.items() if k != 'parameters'})}")


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


# -- phases ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Files:
    register: Path
    feeds: Path
    truth: Path


def generate(folder: Path, count: int, feed_records: int) -> tuple[Files, dict[str, Any]]:
    """The register and, in the same pass, ``feed_records`` establishment records with their truth."""
    files = Files(folder / "register.ndjson", folder / "feeds.ndjson", folder / "truth.csv")
    population = PopulationConfig(count=count, seed=SEED)
    feeds = FeedConfig(records=min(feed_records, count), seed=SEED)
    with bar("generating the register") as progress:
        task = progress.add_task("generate", total=count)
        summary = write_population(
            population,
            files.register,
            feeds=feeds,
            feeds_out=files.feeds,
            truth_out=files.truth,
            progress=lambda done: progress.update(task, completed=done),
        )
    return files, {
        "identities": summary.identities,
        "feed_records": summary.feed_records,
        "identities_per_s": round(summary.rate),
        "register_mb": round(files.register.stat().st_size / 2**20, 1),
    }


def ensure_database(url: str) -> None:
    """Create the database of ``url`` if missing, then empty and migrate it (bench.databases.reset)."""
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    reset(url)


async def import_register(url: str, register: Path, count: int, batch: int, workers: int | None) -> dict[str, Any]:
    """``esante mpi import --certified`` twice: the first import, then the idempotent re-import (all unchanged)."""
    platform = build_platform(Settings(database_url=url, warm_up=False, audit_enabled=False))
    await platform.database.connect()
    runs: dict[str, Any] = {}
    try:
        importer = CertifiedImporter(platform.store, batch_size=batch, workers=workers)
        runs["workers"] = importer.workers
        runs["batch"] = batch
        for name in ("first", "again"):
            load = conditions()
            with bar(f"import ({name})") as progress:
                task = progress.add_task(name, total=count)

                def advance(done: int, progress: Progress = progress, task: Any = task) -> None:
                    progress.update(task, completed=done)

                result = await importer.run(read_file(register), advance)
            runs[name] = {
                "conditions_before": load,
                "read": result.read,
                "created": result.created,
                "updated": result.updated,
                "unchanged": result.unchanged,
                "rejected": len(result.rejected),
                "seconds": round(result.seconds, 2),
                "identities_per_s": round(result.rate),
            }
            console.print(f"import {name}: {runs[name]}")
    finally:
        await platform.database.close()
    runs["peak_rss_mb"] = peak_rss_mb()
    return runs


async def load_certified(url: str, page: int = 10_000) -> tuple[list[Features], dict[str, str], dict[str, Any]]:
    """Every current certified identity as matching features (id = the Patient id), and id → matricule."""
    platform = build_platform(Settings(database_url=url, warm_up=False, audit_enabled=False))
    await platform.database.connect()
    features: list[Features] = []
    matricules: dict[str, str] = {}
    unreadable = 0
    before = rss_mb()
    read_seconds = 0.0
    try:
        async with platform.database.read() as conn:
            total = await conn.fetchval(
                "SELECT count(*) FROM resource WHERE res_type = 'Patient' AND is_current AND NOT deleted"
            )
            with bar("loading certified identities") as progress:
                task = progress.add_task("load", total=total)
                last = -1
                while True:
                    started = time.perf_counter()
                    rows = await conn.fetch(
                        "SELECT rid, res_id, content FROM resource WHERE res_type = 'Patient' AND is_current"
                        " AND NOT deleted AND rid > ? ORDER BY rid LIMIT ?",
                        (last, page),
                    )
                    read_seconds += time.perf_counter() - started
                    if not rows:
                        break
                    last = int(rows[-1][0])
                    for _rid, res_id, content in rows:
                        patient = orjson.loads(content)
                        if level_of(patient) is not IdentityLevel.CERTIFIED:
                            continue
                        try:
                            features.append(prepare(record_from_fhir(patient, str(res_id))))
                        except RecordError:
                            unreadable += 1
                            continue
                        matricules[str(res_id)] = next(
                            i["value"] for i in patient["identifier"] if i.get("system") == MATRICULE_SYSTEM
                        )
                    progress.update(task, advance=len(rows))
    finally:
        await platform.database.close()
    return (
        features,
        matricules,
        {
            "identities": len(features),
            "unreadable": unreadable,
            "database_read_seconds": round(read_seconds, 2),
            "rss_growth_mb": round(rss_mb() - before, 1),
        },
    )


def estimate(features: list[Features], sample: int) -> tuple[ParameterSet, dict[str, Any]]:
    """EM on a random sample of the register (the estimation's own cost is capped, whatever the sample)."""
    rng = random.Random(SEED)
    chosen = features if len(features) <= sample else rng.sample(features, sample)
    params = estimate_parameters(chosen, seed=SEED)
    return params, {
        "sample": len(chosen),
        "version": params.version,
        "thresholds": {"auto_link": params.thresholds.auto_link, "review": params.thresholds.review},
    }


def build_index(features: list[Features], params: ParameterSet) -> tuple[CandidateIndex, dict[str, Any]]:
    """All certified identities in one CandidateIndex, the prior of a look-up being 1/N (as the online engine)."""
    before = rss_mb()
    index = CandidateIndex(params, prior=1 / max(len(features), 10_000))
    index.add_many(features)
    return index, {"records": len(index), "rss_growth_mb": round(rss_mb() - before, 1), "stats": index.stats()}


def lookups(index: CandidateIndex, files: Files, count: int, matricules: dict[str, str]) -> dict[str, Any]:
    """``count`` feed records looked up (prepare + lookup of the 10 best): latency and the best candidate's truth."""
    with files.truth.open(newline="") as handle:
        truth = {int(row["record"]): row for row in csv.DictReader(handle)}
    timings: list[float] = []
    lookup_only: list[float] = []
    candidates = 0
    best_is_person = registered = auto_linked = auto_link_wrong = 0
    with files.feeds.open("rb") as handle, bar("look-ups") as progress:
        task = progress.add_task("lookups", total=count)
        for number, line in enumerate(handle, start=1):
            if number > count:
                break
            patient = orjson.loads(line)
            started = time.perf_counter()
            features = prepare(record_from_fhir(patient, f"feed-{number}"))
            prepared = time.perf_counter()
            found = index.lookup(features, limit=10)
            ended = time.perf_counter()
            timings.append(ended - started)
            lookup_only.append(ended - prepared)
            candidates += len(found)
            expected = truth[number]["matricule"]
            if expected:
                registered += 1
                if found and matricules.get(found[0].record_id) == expected:
                    best_is_person += 1
            if found and found[0].decision == AUTO_LINK:
                auto_linked += 1
                auto_link_wrong += matricules.get(found[0].record_id) != expected
            if number % 500 == 0:
                progress.update(task, completed=number)
    timings.sort()
    lookup_only.sort()

    def ms(values: list[float]) -> dict[str, float]:
        return {
            "mean": round(statistics.fmean(values) * 1000, 3),
            "p50": round(percentile(values, 0.50) * 1000, 3),
            "p99": round(percentile(values, 0.99) * 1000, 3),
            "max": round(values[-1] * 1000, 3),
        }

    return {
        "records": len(timings),
        "latency_ms": ms(timings),
        "lookup_only_ms": ms(lookup_only),
        "candidates_returned_per_lookup": round(candidates / len(timings), 2),
        "registered_records": registered,
        "best_candidate_is_the_person": round(best_is_person / registered, 4) if registered else None,
        "auto_linked": auto_linked,
        "auto_linked_to_another_person": auto_link_wrong,
    }


def duplicates(features: list[Features], params: ParameterSet, workers: int) -> dict[str, Any]:
    """``find_duplicates`` over the whole register as ``esante mpi find-duplicates`` runs it (the duplicate prior,
    ``workers`` processes): there are no true duplicates in it, what it finds is twins and look-alikes, the review
    queue's load."""
    before = rss_mb()
    prior = duplicate_prior(len(features))
    params = dataclasses.replace(params, lambda_=prior)
    with Progress(
        TextColumn("find-duplicates: {task.completed:,} pairs compared"), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("dedupe", total=None)
        report = find_duplicates(
            features, params, progress=lambda done: progress.update(task, completed=done), workers=workers
        )
    auto = sum(1 for pair in report.pairs if pair.score.probability >= params.thresholds.auto_link)
    return {
        "records": len(features),
        "workers": workers,
        "duplicate_prior": prior,
        "pairs_compared": report.compared,
        "pairs_found": len(report.pairs),
        "pairs_at_auto_link": auto,
        "rss_growth_mb": round(rss_mb() - before, 1),
    }


# -- the run ---------------------------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, Any]:
    phases: dict[str, Any] = {}
    output: dict[str, Any] = {
        "benchmark": "mpi_scale",
        "count": args.count,
        "database": args.db.rsplit("@", 1)[-1],
        "phases": phases,
    }
    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="mpi-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    with phase("generate", phases) as figures:
        files, generated = generate(folder, args.count, args.lookups)
        figures.update(generated)
    if args.skip_import:  # the register of the same count and seed is already in the database
        output["import"] = "skipped: the register was imported by an earlier run (docs/performance.md)"
    else:
        ensure_database(args.db)
        with phase("import", phases) as figures:
            figures.update(asyncio.run(import_register(args.db, files.register, args.count, args.batch, args.workers)))
    with phase("load", phases) as figures:
        features, matricules, loaded = asyncio.run(load_certified(args.db))
        figures.update(loaded)
    with phase("estimate", phases) as figures:  # the cost of EM at this scale; not the set the platform uses
        _sampled, estimated = estimate(features, args.sample)
        figures.update(estimated)
    params = default_parameters()  # what the platform scores with until a linkage set is trained
    output["parameters"] = params.version
    with phase("index", phases) as figures:
        index, indexed = build_index(features, params)
        figures.update(indexed)
    with phase("lookups", phases) as figures:
        figures.update(lookups(index, files, args.lookups, matricules))
    del index
    if not args.skip_duplicates:
        with phase("find_duplicates", phases) as figures:
            figures.update(duplicates(features, params, args.dedupe_workers or os.cpu_count() or 1))
    output["peak_rss_mb"] = peak_rss_mb()
    output["machine"] = describe(args.db)
    output["machine"]["note"] = args.note
    if not args.folder:
        for path in (files.register, files.feeds, files.truth):
            path.unlink(missing_ok=True)
        folder.rmdir()
    return output


def print_table(output: dict[str, Any]) -> None:
    p = output["phases"]
    table = Table(title=f"MPI at national scale: {output['count']:,} certified identities (PostgreSQL)")
    table.add_column("phase")
    table.add_column("figure", justify="right")
    table.add_column("time (s)", justify="right")
    table.add_column("memory", justify="right")
    imp = p.get("import")
    rows: list[tuple[str, str, str, str]] = [
        ("generate", f"{p['generate']['identities_per_s']:,}/s", str(p["generate"]["seconds"]), ""),
    ]
    if imp is not None:
        rows += [
        (
            "import (first)",
            f"{imp['first']['identities_per_s']:,} identities/s",
            str(imp["first"]["seconds"]),
            f"peak RSS {imp['peak_rss_mb']['process']:,.0f} MB + worker {imp['peak_rss_mb']['largest_worker']:,.0f} MB",
        ),
        ("import (again)", f"{imp['again']['identities_per_s']:,} identities/s", str(imp["again"]["seconds"]), ""),
        ]  # fmt: skip
    rows += [
        ("load from DB", f"{p['load']['identities']:,} identities", str(p["load"]["seconds"]),
         f"+{p['load']['rss_growth_mb']:,.0f} MB"),
        ("EM estimate", f"sample {p['estimate']['sample']:,}", str(p["estimate"]["seconds"]), ""),
        ("CandidateIndex", f"{p['index']['records']:,} records", str(p["index"]["seconds"]),
         f"+{p['index']['rss_growth_mb']:,.0f} MB"),
        (
            "look-up (pure)",
            f"p50 {p['lookups']['latency_ms']['p50']} / p99 {p['lookups']['latency_ms']['p99']} / "
            f"max {p['lookups']['latency_ms']['max']} ms",
            str(p["lookups"]["seconds"]),
            "",
        ),
    ]  # fmt: skip
    if "find_duplicates" in p:
        d = p["find_duplicates"]
        rows.append(
            (
                "find_duplicates",
                f"{d['pairs_compared']:,} compared, {d['pairs_found']:,} found",
                str(d["seconds"]),
                f"+{d['rss_growth_mb']:,.0f} MB",
            )
        )
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"peak RSS {output['peak_rss_mb']}; machine {output['machine']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_200_000)
    parser.add_argument("--db", default=DEFAULT_URL)
    parser.add_argument("--batch", type=int, default=1000, help="identities per import transaction")
    parser.add_argument("--workers", type=int, default=None, help="import preparation processes (default: cores)")
    parser.add_argument("--lookups", type=int, default=10_000, help="feed records looked up")
    parser.add_argument("--sample", type=int, default=100_000, help="EM sample size")
    parser.add_argument("--skip-duplicates", action="store_true")
    parser.add_argument("--skip-import", action="store_true", help="the register is already in --db")
    parser.add_argument("--dedupe-workers", type=int, default=None, help="find_duplicates processes (default: cores)")
    parser.add_argument("--folder", help="keep the generated files here (default: a temporary folder, removed)")
    parser.add_argument("--note", default="", help="conditions to record (e.g. other sessions running)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    output = run(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(output, indent=2) + "\n")
    print_table(output)


if __name__ == "__main__":
    main()
