"""``esante mpi find-duplicates | train | parameters``: the matching engine's operator commands.

Registered on the ``esante mpi`` command group (``esante.cli`` imports this module).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from esante.mpi.cli import (
    ConfigOption,
    DbOption,
    _settings,
    console,
    mpi_app,
    open_platform,
    progress_bar,
    with_database,
)
from esante.mpi.operator_events import operator_event

parameters_app = typer.Typer(help="The matching engine's versioned parameter sets.", no_args_is_help=True)
mpi_app.add_typer(parameters_app, name="parameters")


def _job_event(job: str, details: dict[str, Any], settings: Any) -> dict[str, Any]:
    """One AuditEvent (DICOM 110100 Application Activity) per batch job run over the register."""
    return operator_event(
        event=("110100", "Application Activity"),
        job=job,
        action="E",
        operator=getpass.getuser(),
        server=settings.effective_audience,
        what=job,
        details=details,
    )


@mpi_app.command("find-duplicates")
def find_duplicates_command(
    min_probability: Annotated[
        float | None, typer.Option("--min-probability", help="Keep pairs from this probability (default: review).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count the suspected pairs, open no Task.")] = False,
    duplicate_rate: Annotated[
        float, typer.Option("--duplicate-rate", help="Expected share of identities with a duplicate (the prior).")
    ] = 0.001,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Processes sharing the comparisons (default: the cores).")
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Batch duplicate detection over the certified identities: a review Task per new suspected pair."""
    from esante.mpi.duplicates import run_find_duplicates

    if min_probability is not None and not 0.0 < min_probability < 1.0:
        typer.echo("error: --min-probability must be between 0 and 1", err=True)
        raise typer.Exit(2)
    if not 0.0 < duplicate_rate < 1.0:
        typer.echo("error: --duplicate-rate must be between 0 and 1", err=True)
        raise typer.Exit(2)
    settings = _settings(config, db)

    async def run() -> None:
        async with open_platform(settings) as platform:
            with progress_bar() as progress:
                loading = progress.add_task("reading certified identities", total=None)
                comparing = progress.add_task("comparing candidate pairs", total=None, visible=False)
                loaded = 0

                def on_loaded(count: int) -> None:
                    nonlocal loaded
                    loaded += count
                    progress.update(loading, completed=loaded)

                def on_compared(done: int) -> None:
                    progress.update(comparing, completed=done, visible=True)

                result = await run_find_duplicates(
                    platform.store,
                    min_probability=min_probability,
                    on_loaded=on_loaded,
                    on_compared=on_compared,
                    dry_run=dry_run,
                    duplicate_rate=duplicate_rate,
                    workers=workers or os.cpu_count() or 1,
                )
            if platform.auditor is not None:
                details = {k: v for k, v in vars(result).items() if k != "seconds"}
                await platform.auditor.record_events([_job_event("find-duplicates", details, settings)])
        console.print(
            f"{result.identities:,} certified identities, {result.compared:,} candidate pairs compared, "
            f"{result.suspected:,} suspected duplicates: {result.opened:,} review tasks opened, "
            f"{result.already_reviewed:,} already reviewed (parameters {result.parameter_version}; "
            f"seconds: {result.seconds})"
        )

    asyncio.run(run())


@mpi_app.command("train")
def train_command(
    sample: Annotated[int, typer.Option("--sample", help="Identities per side in the EM sample.")] = 20_000,
    seed: Annotated[int, typer.Option("--seed", help="Sampling and EM seed (same data + seed = same set).")] = 0,
    activate: Annotated[bool, typer.Option("--activate/--no-activate", help="Use the new set from now on.")] = True,
    deduplication: Annotated[
        bool,
        typer.Option(
            "--deduplication", help="Without enough local identities: estimate on the register (not activated)."
        ),
    ] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the set as JSON to this file.")] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Estimate the matching parameters from the registry itself (EM, no labels) and store them, versioned."""
    from esante.mpi.match_parameters import ParameterStore
    from esante.mpi.training_job import train_from_registry

    if sample < 100:
        typer.echo("error: --sample must be at least 100", err=True)
        raise typer.Exit(2)
    settings = _settings(config, db)

    async def run() -> None:
        activated = False
        async with open_platform(settings) as platform:
            with console.status("estimating m/u probabilities (EM)"):
                try:
                    result = await train_from_registry(
                        platform.store, sample=sample, seed=seed, allow_deduplication=deduplication
                    )
                except ValueError as error:
                    typer.echo(f"error: {error}", err=True)
                    raise typer.Exit(2) from error
            source = f"esante mpi train ({result.mode}, {result.certified} certified, {result.local} local)"
            activated = activate and result.mode == "linkage"  # a register-only set is for inspection
            version = await ParameterStore(platform.database).save(result.params, source, activate=activated)
            if platform.auditor is not None:
                details = {"version": version, "mode": result.mode, "activated": activated}
                await platform.auditor.record_events([_job_event("train", details, settings)])
        if out is not None:
            out.write_text(result.params.to_json() + "\n", encoding="utf-8")
        state = " — active" if activated else " — stored, not active (esante mpi parameters activate)"
        console.print(f"{version} ({result.mode}; λ = {result.params.lambda_:.3g}){state}")
        typer.echo(version)

    asyncio.run(run())


@parameters_app.command("list")
def parameters_list(db: DbOption = None, config: ConfigOption = None) -> None:
    """The stored parameter sets, newest first; the active one marked."""
    from esante.mpi.match_parameters import DEFAULT_SOURCE, ParameterStore, default_parameters

    settings = _settings(config, db)

    rows = asyncio.run(with_database(settings, lambda database: ParameterStore(database).list()))
    table = Table("version", "created", "active", "source")
    for row in rows:
        table.add_row(row["version"], str(row["created_at"]), "yes" if row["active"] else "", row["source"])
    if not any(r["active"] for r in rows):
        table.add_row(default_parameters().version, "-", "yes (default)", DEFAULT_SOURCE)
    console.print(table)


@parameters_app.command("activate")
def parameters_activate(
    version: Annotated[str, typer.Argument(help="A stored version (esante mpi parameters list).")],
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Score with this stored set from now on (every process, within seconds)."""
    from esante.mpi.match_parameters import ParameterStore
    from esante.mpi.matching import ParameterError

    settings = _settings(config, db)

    try:
        asyncio.run(with_database(settings, lambda database: ParameterStore(database).activate(version)))
    except ParameterError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(json.dumps({"active": version}))
