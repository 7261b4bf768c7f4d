"""What every service's operator commands share (``esante mpi|hpd|dsp|cve|wse|blobs …``): the ``--config`` and
``--db`` options, the settings with the schema migrated, the platform or the bare database opened for one job and
closed after it (the job's audit events chained first), and the progress display."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from esante.config import Settings, load_settings
from esante.db.engine import Database

if TYPE_CHECKING:
    from esante.app import Platform

T = TypeVar("T")
console = Console(stderr=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", help="TOML configuration file.")]
DbOption = Annotated[str | None, typer.Option("--db", help="Database URL (sqlite:///… or postgresql://…).")]


def operator_settings(config: Path | None, db: str | None) -> Settings:
    """The settings (file < environment < ``--db``), with the database migrated to the current schema."""
    from esante.db.migrate import upgrade

    settings = load_settings(config, database_url=db)
    upgrade(settings.effective_database_url)
    return settings


async def with_database(settings: Settings, action: Callable[[Database], Awaitable[T]], pool_size: int = 1) -> T:
    """Run ``action`` on the settings' database, connected for it and closed afterwards."""
    from esante.db.engine import create_database

    database = create_database(settings.effective_database_url, pool_size=pool_size)
    await database.connect()
    try:
        return await action(database)
    finally:
        await database.close()


@asynccontextmanager
async def open_platform(settings: Settings) -> AsyncIterator[Platform]:
    """The platform for one operator job: connected, and closed after it (its audit events chained first)."""
    from esante.app import build_platform

    platform = build_platform(settings)
    await platform.database.connect()
    try:
        yield platform
    finally:
        try:
            if platform.auditor is not None:
                await platform.auditor.close()
        finally:
            await platform.database.close()


def progress_bar(description: str = "{task.description}") -> Progress:
    """The operator jobs' progress display (stderr, cleared when done)."""
    return Progress(
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
