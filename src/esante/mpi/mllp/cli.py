"""``esante mllp``: the MPI's HL7 v2 listener for one establishment's identity source."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer

from esante.mpi.mllp.framing import DEFAULT_MAX_BYTES


def mllp(
    client: Annotated[
        str, typer.Option("--client", help="The OAuth client (the establishment's identity source) it speaks for.")
    ],
    port: Annotated[int, typer.Option("--port", help="TCP port (2575 is HL7's).")] = 2575,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    max_bytes: Annotated[
        int, typer.Option("--max-bytes", help="Largest message accepted, in bytes.")
    ] = DEFAULT_MAX_BYTES,
    db: Annotated[str | None, typer.Option("--db", help="Database URL (sqlite:///… or postgresql://…).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML configuration file.")] = None,
) -> None:
    """Serve HL7 v2 over MLLP: ADT A01/A04/A08/A28/A31/A40 feeds and QBP^Q22 (PDQ) queries, as CLIENT."""
    from esante import logs
    from esante.app import build_platform
    from esante.config import load_settings
    from esante.db.migrate import upgrade
    from esante.mpi.mllp.server import MllpServer, MllpService
    from esante.security.operator_tokens import OperatorTokenError

    settings = load_settings(config, database_url=db)
    logs.configure(settings.log_level)
    upgrade(settings.effective_database_url)

    async def run() -> None:
        platform = build_platform(settings)
        await platform.database.connect()
        if platform.auditor is not None:
            await platform.auditor.flush()
        server: MllpServer | None = None
        try:
            service = MllpService(platform, client)
            await service.check_client()
            server = MllpServer(service, max_bytes=max_bytes)
            bound_host, bound_port = await server.start(host, port)
            typer.echo(f"eSanté MPI HL7 v2 (MLLP) on {bound_host}:{bound_port} as client {client}", err=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):  # stop cleanly: the audit trail is flushed on the way out
                loop.add_signal_handler(signum, stop.set)
            await stop.wait()
        finally:
            if server is not None:
                await server.close()
            if platform.auditor is not None:
                await platform.auditor.close()
            await platform.database.close()

    try:
        asyncio.run(run())
    except OperatorTokenError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
