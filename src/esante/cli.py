"""The ``esante`` command line: one configuration (see config.py) shared with the running server."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from esante.config import Settings, load_settings

app = typer.Typer(help="eSanté national eHealth platform.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema management (Alembic).", no_args_is_help=True)
app.add_typer(db_app, name="db")
audit_app = typer.Typer(help="The audit trail (IHE BALP AuditEvents, hash-chained).", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
console = Console()

ConfigOption = Annotated[Path | None, typer.Option("--config", help="TOML configuration file.")]
DbOption = Annotated[str | None, typer.Option("--db", help="Database URL (sqlite:///… or postgresql://…).")]


def _settings(config: Path | None, db: str | None = None, **overrides: object) -> Settings:
    return load_settings(config, database_url=db, **overrides)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port.")] = None,
    db: DbOption = None,
    config: ConfigOption = None,
    workers: Annotated[int, typer.Option(help="Worker processes (PostgreSQL only).")] = 1,
    demo: Annotated[bool, typer.Option("--demo", help="Load the demo data set if the store is empty.")] = False,
) -> None:
    """Start the FHIR server (creating or upgrading the database first)."""
    import uvicorn

    from esante.db.migrate import upgrade

    settings = _settings(config, db, host=host, port=port)
    upgrade(settings.effective_database_url)
    settings.effective_blob_dir.mkdir(parents=True, exist_ok=True)
    if demo:
        from esante.demo import load_demo

        created = asyncio.run(load_demo(settings))
        console.print(f"demo data: {created} resources loaded" if created else "demo data: store not empty, kept")
    base = f"http://{settings.host}:{settings.port}/fhir"
    console.print(f"[bold green]eSanté FHIR server[/] at [bold]{base}[/] (database: {_safe(settings)})")
    if workers > 1 and not settings.effective_database_url.startswith("postgres"):
        console.print("[yellow]SQLite is single-writer: running one worker[/]")
        workers = 1
    # uvicorn's workers build the app from the environment: hand them exactly these settings
    os.environ["ESANTE_DATABASE_URL"] = settings.effective_database_url
    os.environ["ESANTE_VAR_DIR"] = str(settings.var_dir)
    os.environ["ESANTE_HOST"] = settings.host
    os.environ["ESANTE_PORT"] = str(settings.port)
    if config is not None:
        os.environ["ESANTE_CONFIG"] = str(config)
    uvicorn.run(
        "esante.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level,
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None, config: ConfigOption = None, revision: str = typer.Argument("head")) -> None:
    """Create or migrate the database schema to the latest revision."""
    from esante.db.migrate import current, upgrade

    settings = _settings(config, db)
    upgrade(settings.effective_database_url, revision)
    console.print(f"database {_safe(settings)} at revision {current(settings.effective_database_url)}")


@db_app.command("current")
def db_current(db: DbOption = None, config: ConfigOption = None) -> None:
    """Show the schema revision of the configured database."""
    from esante.db.migrate import current

    settings = _settings(config, db)
    console.print(current(settings.effective_database_url) or "empty (run: esante db upgrade)")


@audit_app.command("verify")
def audit_verify(db: DbOption = None, config: ConfigOption = None) -> None:
    """Walk the audit hash chain; exit 1 and name the first broken record if it was tampered with."""
    from esante.db.engine import create_database
    from esante.security.audit_trail import AuditTrail, VerifyResult

    settings = _settings(config, db)

    async def run() -> VerifyResult:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        database = create_database(settings.effective_database_url, pool_size=2)
        await database.connect()
        try:
            trail = AuditTrail()
            total = await trail.count(database)
            with Progress(
                TextColumn("verifying the audit chain"),
                BarColumn(),
                MofNCompleteColumn(),
                console=console,
                transient=True,
                disable=total < 10_000,
            ) as progress:
                task = progress.add_task("verify", total=total)
                return await trail.verify(database, lambda done: progress.update(task, completed=done))
        finally:
            await database.close()

    result = asyncio.run(run())
    if result.ok:
        console.print(f"[green]audit chain intact[/]: {result.checked} records verified")
        return
    where = f"at seq {result.first_broken_seq}" if result.first_broken_seq is not None else "outside the chain"
    console.print(f"[red]audit chain broken {where}[/]: {result.reason} ({result.checked} records verified)")
    raise typer.Exit(1)


@app.command("config")
def show_config(db: DbOption = None, config: ConfigOption = None) -> None:
    """Print the effective configuration (secrets masked)."""
    settings = _settings(config, db)
    for key, value in sorted(vars(settings).items()):
        console.print(f"{key} = {_safe(settings) if key == 'database_url' else value}")
    console.print(f"effective database = {_safe(settings)}")
    console.print(f"effective blob dir = {settings.effective_blob_dir}")


def _safe(settings: Settings) -> str:
    """The database URL with any password masked (it may sit in an env var, never in a log)."""
    url = settings.effective_database_url
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}{':***' if ':' in creds else ''}@{host}"
    return url


if __name__ == "__main__":
    app()
