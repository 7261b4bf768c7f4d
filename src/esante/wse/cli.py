"""``esante wse …``: the CCSS affiliation import and the monthly use report."""

from __future__ import annotations

import asyncio
import getpass
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

wse_app = typer.Typer(
    help="WSE: affiliation (CCSS) and right-to-prescribe checks for pharmacies, laboratories and the CGDIS.",
    no_args_is_help=True,
)
console = Console(stderr=True)
ConfigOption = Annotated[Path | None, typer.Option("--config", help="TOML configuration file.")]
DbOption = Annotated[str | None, typer.Option("--db", help="Database URL (sqlite:///… or postgresql://…).")]
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def _count_lines(path: Path) -> int:
    """Lines in the file (for the progress bar's total), counted in binary chunks."""
    total = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            total += chunk.count(b"\n")
    return total


@wse_app.command("import-affiliations")
def import_affiliations(
    file: Annotated[Path, typer.Argument(help="CSV (documented columns) or NDJSON of FHIR Coverages from the CCSS.")],
    rejects: Annotated[
        Path | None, typer.Option("--rejects", help="Write the rejected lines (line, reason) to this CSV.")
    ] = None,
    batch: Annotated[int, typer.Option("--batch", help="Affiliations per transaction.")] = 1000,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Import affiliations (idempotent on the affiliation number; delta files add, change, end or annul)."""
    from esante.cli_support import open_platform
    from esante.cli_support import operator_settings as _settings
    from esante.import_report import report_rejections
    from esante.wse.affiliation_import import AffiliationImporter, import_event
    from esante.wse.insurers import ensure_insurers
    from esante.wse.sources import read_file

    if not file.is_file():
        typer.echo(f"error: {file} is not a readable file", err=True)
        raise typer.Exit(2)
    settings = _settings(config, db)
    total = _count_lines(file)

    async def run() -> None:
        async with open_platform(settings) as platform:
            wse = platform.wse  # type: ignore[attr-defined]
            await ensure_insurers(platform.store, wse.insurers)
            importer = AffiliationImporter(platform.store, wse.index, wse.insurers, batch_size=batch)
            progress = Progress(
                TextColumn("importing affiliations"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            with progress:
                task = progress.add_task("import", total=total or None)
                result = await importer.run(read_file(file), lambda done: progress.update(task, completed=done))
            if platform.auditor is not None:
                event = import_event(result, file.name, getpass.getuser(), settings.effective_audience)
                await platform.auditor.record_events([event])
        console.print(
            f"{result.read:,} read: {result.created:,} created, {result.updated:,} updated, "
            f"{result.unchanged:,} unchanged, {len(result.rejected):,} rejected "
            f"({result.linked:,} linked to the MPI's certified identity) — {result.rate:,.0f} affiliations/s"
        )
        report_rejections(console, result.rejected, rejects)

    try:
        asyncio.run(run())
    except ValueError as error:  # a CSV whose header is not the format
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error


@wse_app.command("usage")
def usage(
    month: Annotated[str, typer.Option("--month", metavar="YYYY-MM", help="The month to report on.")],
    by_day: Annotated[bool, typer.Option("--by-day", help="One line per day as well.")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """WSE uses of a month by caller kind (pharmacy, laboratory, cgdis) and operation: the bulletin's figures."""
    from esante.cli_support import operator_settings as _settings
    from esante.cli_support import with_database
    from esante.db.engine import Database
    from esante.wse.usage import CALLER_KINDS, OPERATIONS, UsageRow, month_totals, usage_of_month

    if not _MONTH.match(month):
        typer.echo(f"error: --month: YYYY-MM, not {month!r}", err=True)
        raise typer.Exit(2)
    settings = _settings(config, db)

    async def read(database: Database) -> list[UsageRow]:
        async with database.read() as conn:
            return await usage_of_month(conn, month)

    rows = asyncio.run(with_database(settings, read))
    totals = month_totals(rows)
    typer.echo("month\tcaller_kind\toperation\tuses")
    for kind in CALLER_KINDS:
        for operation in OPERATIONS:
            typer.echo(f"{month}\t{kind}\t{operation}\t{totals[(kind, operation)]}")
    extra = sorted(k for k in totals if k[0] not in CALLER_KINDS or k[1] not in OPERATIONS)
    for kind, operation in extra:
        typer.echo(f"{month}\t{kind}\t{operation}\t{totals[(kind, operation)]}")
    typer.echo(f"{month}\ttotal\tall\t{sum(totals.values())}")
    if by_day:
        for row in rows:
            typer.echo(f"{row.day}\t{row.caller_kind}\t{row.operation}\t{row.uses}")
