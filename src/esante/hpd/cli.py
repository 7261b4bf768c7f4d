"""``esante hpd …``: the directory's operator commands (import, synthetic directory, code systems)."""

from __future__ import annotations

import asyncio
import getpass
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from esante.cli_support import ConfigOption, DbOption, console, open_platform, progress_bar
from esante.cli_support import operator_settings as _settings
from esante.hpd.lines import Line
from esante.import_report import report_rejections

hpd_app = typer.Typer(
    help="The healthcare provider directory: professionals, rights to practise, places of practice.",
    no_args_is_help=True,
)


@hpd_app.command("import")
def import_directory(
    file: Annotated[Path, typer.Argument(help="CSV with the documented columns (.csv), or NDJSON of FHIR resources.")],
    rejects: Annotated[
        Path | None, typer.Option("--rejects", help="Write the rejected lines (line, reason) to this CSV.")
    ] = None,
    batch: Annotated[int, typer.Option("--batch", help="Lines per transaction.")] = 500,
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="Processes preparing CSV rows (default: 2 on PostgreSQL for files over 1 MB)."),
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Import the Ministry/CNS extract or a delta (idempotent: re-importing updates, never duplicates)."""
    from esante.hpd.directory_import import DirectoryImporter
    from esante.hpd.events import import_event

    if not file.is_file():
        typer.echo(f"error: {file} is not a readable file", err=True)
        raise typer.Exit(2)
    settings = _settings(config, db)
    if workers is None:
        big = file.stat().st_size > 1_000_000 and settings.effective_database_url.startswith("postgres")
        workers = min(2, os.cpu_count() or 1) if big else 0

    async def run() -> None:
        async with open_platform(settings) as platform:
            importer = DirectoryImporter(platform.store, batch_size=batch, operator=getpass.getuser())
            with progress_bar("importing the directory") as progress:
                task = progress.add_task("import", total=_count_lines(file))
                lines = read_file(file, workers)
                result = await importer.run(lines, lambda done: progress.update(task, completed=done))
            if platform.auditor is not None:
                event = import_event(result, file.name, getpass.getuser(), settings.effective_audience)
                await platform.auditor.record_events([event])
        created = ", ".join(f"{n} {t}" for t, n in sorted(result.created.items())) or "nothing"
        updated = ", ".join(f"{n} {t}" for t, n in sorted(result.updated.items())) or "nothing"
        console.print(
            f"{result.read:,} lines, {result.professionals:,} professionals: created {created}; updated {updated}; "
            f"{result.unchanged:,} unchanged; {result.status_changes} right-to-practise change(s); "
            f"{len(result.rejected)} rejected — {result.rate:,.0f} lines/s"
        )
        report_rejections(console, result.rejected, rejects)

    asyncio.run(run())


def read_file(path: Path, workers: int = 0) -> Iterator[tuple[int, Line | str]]:
    """By extension: ``.csv`` → the CSV format (rows prepared by ``workers`` processes, 0: in this one), anything
    else (``.ndjson``, ``.jsonl``) → NDJSON."""
    from datetime import date

    from esante.hpd.csv_source import read_csv_rows
    from esante.hpd.ndjson_source import read_ndjson
    from esante.hpd.prepare_pool import prepared_lines

    if path.suffix.lower() != ".csv":
        return read_ndjson(path)
    return prepared_lines(read_csv_rows(path), date.today(), workers)


def _count_lines(path: Path) -> int:
    """Data lines of the file (for the progress bar): a quick pass over the bytes."""
    with path.open("rb") as handle:
        count = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    return max(0, count - 1) if path.suffix.lower() == ".csv" else count


@hpd_app.command("synth")
def synth(
    out: Annotated[Path, typer.Option("--out", help="The CSV file to write.")],
    count: Annotated[int, typer.Option("--count", help="Professionals (the national count is 25,005).")] = 25_005,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same file.")] = 1,
) -> None:
    """Write a synthetic national directory (CSV import format): professionals with their places of practice."""
    from esante.hpd.synthetic import DirectoryConfig, write_directory_csv

    with progress_bar("generating the directory") as progress:
        task = progress.add_task("synth", total=count)
        summary = write_directory_csv(
            DirectoryConfig(count=count, seed=seed), out, lambda done: progress.update(task, completed=done)
        )
    console.print(
        f"{summary.professionals:,} professionals, {summary.rows:,} rows, {summary.organizations:,} organisations, "
        f"{summary.sites:,} sites → {out}"
    )


@hpd_app.command("codes")
def codes(
    profession: Annotated[
        str | None, typer.Argument(help="A profession code: list its specialties (default: the professions).")
    ] = None,
) -> None:
    """The professions code system (urn:esante:hpd:profession): codes, French display, English designation."""
    from esante.hpd.codes import professions

    table = professions()
    concepts = table.specialties_of(profession) if profession else table.professions()
    if profession and table.get(profession) is None:
        typer.echo(f"error: unknown profession {profession!r}", err=True)
        raise typer.Exit(2)
    for concept in concepts:
        typer.echo(f"{concept.code}\t{concept.display}\t{concept.english}")
