"""``esante mpi …``: the MPI's operator commands (identifier domains, certified import, yearly report); the
matching engine's commands are in ``mpi/matching_cli.py``."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from esante.cli_support import ConfigOption, DbOption, open_platform, progress_bar, with_database
from esante.cli_support import operator_settings as _settings
from esante.db.engine import Database
from esante.import_report import report_rejections

if TYPE_CHECKING:
    pass

mpi_app = typer.Typer(
    help="The master patient index: identifier domains and certified identities.", no_args_is_help=True
)
domains_app = typer.Typer(help="Identifier domains (one per establishment).", no_args_is_help=True)
mpi_app.add_typer(domains_app, name="domains")
console = Console(stderr=True)
T = TypeVar("T")


@domains_app.command("add")
def domains_add(
    system: Annotated[str, typer.Argument(help="The domain's OID system, e.g. urn:oid:1.3.182.3.1.1.7.2.")],
    name: Annotated[str, typer.Option("--name", help="The establishment's name.")],
    organization: Annotated[str | None, typer.Option("--organization", help="Organization reference or name.")] = None,
    client: Annotated[
        str | None, typer.Option("--client", help="The OAuth client that is the domain's identity source.")
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Register an identifier domain and its one identity source."""
    from esante.mpi.domains import DomainError, DomainStore

    settings = _settings(config, db)

    async def run(database: Database) -> None:
        await DomainStore(database).register(system, name, organization=organization, source_client_id=client)

    try:
        asyncio.run(with_database(settings, run))
    except DomainError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(system)


@domains_app.command("list")
def domains_list(db: DbOption = None, config: ConfigOption = None) -> None:
    """The identifier domains (national ones first): system, name, organization, identity source."""
    from esante.mpi.domains import DomainStore

    settings = _settings(config, db)

    async def run(database: Database) -> None:
        for domain in await DomainStore(database).list():
            source = "national" if domain.national else (domain.source_client_id or "-")
            typer.echo(f"{domain.system}\t{domain.name}\t{domain.organization or '-'}\t{source}")

    asyncio.run(with_database(settings, run))


@mpi_app.command("import")
def import_identities(
    file: Annotated[Path, typer.Argument(help="NDJSON of FHIR Patients, or CSV with the documented columns.")],
    certified: Annotated[
        bool, typer.Option("--certified", help="The file is the national register (RNPP/CCSS) extract.")
    ] = False,
    rejects: Annotated[
        Path | None, typer.Option("--rejects", help="Write the rejected lines (line, reason) to this CSV.")
    ] = None,
    batch: Annotated[int, typer.Option("--batch", help="Identities per transaction.")] = 500,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Import identities (idempotent: re-importing updates, never duplicates); rejected lines are reported."""
    from esante.mpi.certified_import import CertifiedImporter, import_event
    from esante.mpi.sources import read_file

    if not certified:
        typer.echo(
            "error: only --certified imports exist (establishments feed their identities through PIXm)", err=True
        )
        raise typer.Exit(2)
    if not file.is_file():
        typer.echo(f"error: {file} is not a readable file", err=True)
        raise typer.Exit(2)
    settings = _settings(config, db)
    size = file.stat().st_size

    async def run() -> None:
        async with open_platform(settings) as platform:
            importer = CertifiedImporter(platform.store, batch_size=max(1, batch))
            with progress_bar("importing certified identities") as progress:
                task = progress.add_task("import", total=None)
                result = await importer.run(read_file(file), lambda done: progress.update(task, completed=done))
            if platform.auditor is not None:
                await platform.auditor.record_events([import_event(result, file.name, getpass.getuser(), settings)])
        console.print(
            f"{result.read} read: {result.created} created, {result.updated} updated, {result.unchanged} unchanged, "
            f"{len(result.rejected)} rejected — {result.rate:,.0f} identities/s ({size:,} bytes)"
        )
        report_rejections(console, result.rejected, rejects)

    asyncio.run(run())


@mpi_app.command("report")
def report(
    year: Annotated[
        str, typer.Option("--year", metavar="YEAR", help="The calendar year (UTC) to report on, e.g. 2025.")
    ],
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default ./mpi-report-<year>/).")] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """The yearly identity-vigilance report: report.html (with charts) and report.csv (docs/mpi-report.md)."""
    from esante.mpi.report.figures import YearError, parse_year
    from esante.mpi.report.run import run_report

    try:
        number = parse_year(year)
    except YearError as error:
        typer.echo(f"error: --year: {error}", err=True)
        raise typer.Exit(2) from error
    settings = _settings(config, db)

    async def run() -> None:
        async with open_platform(settings) as platform:
            with progress_bar() as progress:
                bars: dict[str, Any] = {}

                def advance(stage: str, done: int, total: int | None) -> None:
                    if stage not in bars:
                        bars[stage] = progress.add_task(f"reading {stage}", total=total)
                    progress.update(bars[stage], completed=done, total=total)

                files = await run_report(platform, number, out, getpass.getuser(), advance)
        f = files.figures
        console.print(
            f"{number}: {f.identities_total:,} identities, {sum(f.decisions.values()):,} decisions, "
            f"{f.reviews_opened_total:,} reviews opened, {f.reviews_closed_total:,} closed"
        )
        typer.echo(files.html)
        typer.echo(files.csv)

    try:
        asyncio.run(run())
    except OSError as error:  # --out an existing file, or not writable
        typer.echo(f"error: --out: {error}", err=True)
        raise typer.Exit(2) from error
