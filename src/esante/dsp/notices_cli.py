"""``esante dsp notify-openings``: tell each person whose DSP is in its refusal window and who has not been told yet
(``notices_openings.py``; the server does the same every ``dsp_opening_notice_interval`` seconds). Registered on
``esante dsp`` by ``dsp/cli.py``."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

# registers the dsp-opened kind in every `esante` process (esante notify deliver e-mails it with its fixed text)
import esante.dsp.notices  # noqa: F401
from esante.cli_support import ConfigOption, DbOption


def notify_openings_command(
    batch: Annotated[int, typer.Option("--batch", min=1, max=2000, help="Notifications per transaction.")] = 500,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Notify at most this many people.")] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Notify (dsp-opened) every person whose DSP was opened and is still in its refusal window, once each; the
    e-mails follow through the outbox (esante notify deliver, or the server's delivery task)."""
    from esante.cli_support import open_platform
    from esante.cli_support import operator_settings as _settings
    from esante.dsp.cli import _progress
    from esante.dsp.context import dsp_context
    from esante.dsp.notices_openings import count_due, notify_openings

    settings = _settings(config, db)

    async def run() -> None:
        async with open_platform(settings) as platform:
            context = dsp_context(platform)
            total = await count_due(platform.database, context)
            if limit is not None:
                total = min(total, limit)
            with _progress() as progress:
                task = progress.add_task("notifying DSP openings", total=total)
                result = await notify_openings(
                    platform.database,
                    platform.store,
                    context,
                    batch=batch,
                    limit=limit,
                    progress=lambda n: progress.advance(task, n),
                )
        typer.echo(f"{result.notified} people notified of their DSP's opening ({result.already} were already)")

    asyncio.run(run())
