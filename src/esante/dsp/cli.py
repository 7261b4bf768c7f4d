"""``esante dsp …``: the DSP's operator commands (opening for every certified identity, destruction at the end of
retention, a record's status and the proofs of destruction)."""

from __future__ import annotations

import asyncio
import getpass
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from esante.cli_support import ConfigOption, DbOption, open_platform
from esante.cli_support import operator_settings as _settings
from esante.dsp.notices_cli import notify_openings_command

if TYPE_CHECKING:
    from esante.dsp.audit import Actor

dsp_app = typer.Typer(
    help="The DSP (shared care record): opening, destruction at the end of retention, status.", no_args_is_help=True
)
dsp_app.command("notify-openings")(notify_openings_command)  # notices_cli.py
console = Console(stderr=True)


def _operator() -> Actor:
    from esante.dsp.audit import Actor

    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment
        user = "operator"
    return Actor("operator", account=user, display=f"operator {user}")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


@dsp_app.command("open-all")
def open_all_command(
    batch: Annotated[int, typer.Option("--batch", min=1, max=3000, help="Identities per transaction.")] = 2000,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Open a DSP for every certified identity of the MPI that has none (pending for the refusal window);
    idempotent: identities with a DSP, whatever its state, are left as they are."""
    from esante.dsp.context import dsp_context
    from esante.dsp.lifecycle_jobs import count_certified, open_all

    settings = _settings(config, db)

    async def run() -> None:
        async with open_platform(settings) as platform:
            context = dsp_context(platform)
            total = await count_certified(platform.store)
            with _progress() as progress:
                task = progress.add_task("opening DSPs", total=total)
                result = await open_all(
                    platform.store, context, _operator(), batch=batch, progress=lambda n: progress.advance(task, n)
                )
        typer.echo(
            f"{result.certified} certified identities: {result.opened} DSPs opened, {result.already} had one "
            f"(refusal window {settings.dsp_refusal_window_days} days)"
        )

    asyncio.run(run())


@dsp_app.command("destroy-due")
def destroy_due_command(
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Destroy at most this many DSPs.")] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Destroy the closed DSPs whose retention period is over (each in its own transaction, with its proof of
    destruction: whose, when, how many of what, a SHA-256 of what was destroyed)."""
    from esante.dsp.context import dsp_context
    from esante.dsp.lifecycle_jobs import count_due, destroy_due

    settings = _settings(config, db)

    async def run() -> int:
        async with open_platform(settings) as platform:
            context = dsp_context(platform)
            total = await count_due(platform.store, context)
            if limit is not None:
                total = min(total, limit)
            with _progress() as progress:
                task = progress.add_task("destroying DSPs", total=total)
                result = await destroy_due(
                    platform.store, context, _operator(), limit=limit, progress=lambda n: progress.advance(task, n)
                )
        for done in result.destroyed:
            counts = ", ".join(f"{kind} {n}" for kind, n in sorted(done.counts.items())) or "nothing stored"
            typer.echo(f"Patient/{done.patient_id}: destroyed ({counts}); proof sha256 {done.digest}")
        for patient_id, why in result.failed:
            typer.echo(f"Patient/{patient_id}: not destroyed: {why}", err=True)
        typer.echo(f"{len(result.destroyed)} DSPs destroyed")
        return 1 if result.failed else 0

    code = asyncio.run(run())
    if code:
        raise typer.Exit(code)


@dsp_app.command("status")
def status_command(
    patient: Annotated[str, typer.Argument(help="The Patient id (certified identity).")],
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """A DSP's state and dates, and its proofs of destruction (JSON)."""
    from esante.db.engine import create_database
    from esante.dsp import lifecycle_store
    from esante.dsp.context import DspContext
    from esante.dsp.grants import emergency_opted_out
    from esante.dsp.lifecycle import status_parameters

    settings = _settings(config, db)

    async def run() -> dict[str, object]:
        database = create_database(settings.effective_database_url, pool_size=1)
        await database.connect()
        try:
            async with database.read() as conn:
                now = DspContext().now()
                record = await lifecycle_store.get(conn, patient)
                opted_out = await emergency_opted_out(conn, patient, now)
                proofs = await lifecycle_store.destructions(conn, patient)
        finally:
            await database.close()
        status: dict[str, object] = {
            str(p["name"]): next(v for k, v in p.items() if k.startswith("value"))
            for p in status_parameters(record, now, opted_out)
        }
        keys = ("patient", "closed_at", "retention_until", "destroyed_at", "counts", "digest", "audit_event")
        destroyed = [dict(zip(keys, row, strict=True)) for row in proofs]
        for proof in destroyed:
            proof["counts"] = orjson.loads(str(proof["counts"]))
        return {"patient": patient, **status, "destructions": destroyed}

    body = asyncio.run(run())
    if body.get("status") == "none" and not body.get("destructions"):
        typer.echo(f"Patient/{patient} has no DSP", err=True)
        raise typer.Exit(1)
    typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
