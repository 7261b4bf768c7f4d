"""``esante blobs …``: the document blob store's operator commands (docs/blob-store.md)."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from esante.blobs.errors import BlobConfigError
from esante.blobs.store import BlobStore, RotateOutcome
from esante.config import Settings, load_settings

blobs_app = typer.Typer(
    help="The document blob store: encrypted at rest, content-addressed (master keys, rotation, checks).",
    no_args_is_help=True,
)
console = Console(stderr=True)

T = TypeVar("T")
ConfigOption = Annotated[Path | None, typer.Option("--config", help="TOML configuration file.")]
DbOption = Annotated[
    str | None, typer.Option("--db", help="Database URL of the audit trail (sqlite:///… or postgresql://…).")
]
WorkersOption = Annotated[int, typer.Option("--workers", min=1, max=64, help="Blobs handled in parallel.")]


def _store(config: Path | None, db: str | None = None, *, audited: bool = False) -> tuple[Settings, BlobStore]:
    """The configured store; ``audited`` commands also bring the database (migrated) their AuditEvent goes to."""
    if audited:
        from esante.cli_support import operator_settings as _settings

        settings = _settings(config, db)
    else:
        settings = load_settings(config, database_url=db)
    try:
        return settings, BlobStore.from_settings(settings)
    except BlobConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error


def _audited(settings: Settings, job: Callable[[], T], event: Callable[[T, str, str], dict[str, Any]]) -> T:
    """Run ``job`` with the platform's audit trail open (so nothing runs that cannot be audited), then record
    ``event(result, operator, server)``."""
    from esante.cli_support import open_platform

    async def run() -> T:
        async with open_platform(settings) as platform:
            result = await asyncio.to_thread(job)
            if platform.auditor is not None:
                await platform.auditor.record_events([event(result, getpass.getuser(), settings.effective_audience)])
            return result

    return asyncio.run(run())


@contextmanager
def _progress(description: str, total: int) -> Iterator[Progress]:
    with Progress(
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        progress.add_task(description, total=total)
        yield progress


def _warn_generated(store: BlobStore) -> None:
    if store.keys.generated:
        console.print(
            f"[yellow]warning[/]: master key from {store.keys.origin} (development default, next to the data); "
            "configure blob_keys_file or ESANTE_BLOB_KEYS for production"
        )


@blobs_app.command("status")
def status(
    config: ConfigOption = None,
    by_key: Annotated[
        bool, typer.Option("--by-key", help="Count blobs per master key (reads every key record).")
    ] = False,
) -> None:
    """The store's folder, master keys (ids only) and number of blobs."""
    from esante.blobs.maintenance import census, count_blobs

    settings, store = _store(config)
    _warn_generated(store)
    typer.echo(f"blob dir = {settings.effective_blob_dir}")
    typer.echo(f"master keys = {', '.join(sorted(store.keys.keys))} (from {store.keys.origin})")
    typer.echo(f"active key = {store.keys.active_kid}")
    typer.echo(f"segment size = {store.segment_size} bytes")
    total = count_blobs(store)
    typer.echo(f"blobs = {total:,}")
    if by_key:
        with _progress("reading key records", total) as progress:
            counts = census(store, lambda done: progress.update(progress.task_ids[0], completed=done))
        for kid, count in sorted(counts.items()):
            marker = "active" if kid == store.keys.active_kid else "configured" if store.keys.get(kid) else "UNKNOWN"
            typer.echo(f"  {kid}\t{count:,}\t{marker}")


@blobs_app.command("new-key")
def new_key(kid: Annotated[str, typer.Option("--kid", help="Id of the new key (letters, digits, . _ -).")]) -> None:
    """Print a new random master key entry (``kid:base64``) to append to the keys file; nothing is stored."""
    from esante.blobs.master_keys import new_key_entry

    try:
        typer.echo(new_key_entry(kid))
    except BlobConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error


@blobs_app.command("rotate-key")
def rotate_key(config: ConfigOption = None, db: DbOption = None, workers: WorkersOption = 4) -> None:
    """Re-wrap every blob's data key with the active master key (the documents are not re-encrypted).

    Resumable and idempotent: blobs already on the active key are skipped. A blob wrapped by a key that is not
    configured is reported and left as it is. Exit 0 when every blob is on the active key (the old keys may then
    be removed from the configuration), 1 otherwise.
    """
    from esante.blobs.audit import SECURITY_ALERT, blob_job_event
    from esante.blobs.maintenance import RotationReport, count_blobs, rotate_all

    settings, store = _store(config, db, audited=True)
    _warn_generated(store)

    def job() -> RotationReport:
        total = count_blobs(store)
        with _progress(f"re-wrapping data keys with {store.keys.active_kid}", total) as progress:
            return rotate_all(
                store, workers=workers, progress=lambda done: progress.update(progress.task_ids[0], completed=done)
            )

    def event(report: RotationReport, operator: str, server: str) -> dict[str, Any]:
        details: dict[str, Any] = {"active-key": report.active_kid, "store-record": report.store_record[0].value}
        details |= {outcome.value: count for outcome, count in sorted(report.counts.items(), key=str)}
        failure = None if report.complete else f"{len(report.problems)} blob(s) left on their old key"
        return blob_job_event(
            job="rotate-key",
            event=SECURITY_ALERT,
            action="U",
            operator=operator,
            server=server,
            what=f"blob store {settings.effective_blob_dir}",
            details=details,
            failure=failure,
        )

    report = _audited(settings, job, event)
    counts = report.counts
    typer.echo(
        f"{report.total:,} blobs: {counts[RotateOutcome.ROTATED]:,} re-wrapped, "
        f"{counts[RotateOutcome.CURRENT]:,} already on {report.active_kid}, "
        f"{len(report.problems):,} left as they were; store record {report.store_record[0].value} "
        f"({report.seconds:.1f} s)"
    )
    for address, outcome, detail in report.problems[:50]:
        typer.echo(f"  {address}  {outcome.value}: {detail}")
    if len(report.problems) > 50:
        typer.echo(f"  … {len(report.problems) - 50} more")
    if not report.complete:
        console.print("[red]rotation incomplete[/]: keep the old keys configured until the problems are resolved")
        raise typer.Exit(1)
    console.print(f"[green]every blob is wrapped by {report.active_kid}[/]: the previous keys can be removed")


@blobs_app.command("verify")
def verify(
    config: ConfigOption = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Key records, manifests and lengths only; no decryption of the data.")
    ] = False,
    address: Annotated[list[str] | None, typer.Option("--address", help="Check only these blobs.")] = None,
    clean_tmp: Annotated[
        bool, typer.Option("--clean-tmp", help="Remove interrupted writes older than a day (tmp/).")
    ] = False,
    workers: WorkersOption = 2,
    db: DbOption = None,
) -> None:
    """Check every blob: decrypt and authenticate each segment, recompute size, SHA-1, SHA-256 and the address.

    Exit 1 and list the blobs that fail (damaged, unknown key, wrong key).
    """
    from esante.blobs.audit import APPLICATION_ACTIVITY, blob_job_event
    from esante.blobs.maintenance import VerifyReport, count_blobs, verify_all

    settings, store = _store(config, db, audited=True)
    _warn_generated(store)

    def job() -> VerifyReport:
        total = len(address) if address else count_blobs(store)
        with _progress("verifying blobs", total) as progress:
            return verify_all(
                store,
                full=not quick,
                workers=workers,
                addresses=address or None,
                progress=lambda done: progress.update(progress.task_ids[0], completed=done),
            )

    def event(report: VerifyReport, operator: str, server: str) -> dict[str, Any]:
        details: dict[str, Any] = {"mode": "full" if report.full else "quick", "blobs": report.total}
        details |= {status.value: count for status, count in sorted(report.counts.items(), key=str)}
        return blob_job_event(
            job="verify",
            event=APPLICATION_ACTIVITY,
            action="E",
            operator=operator,
            server=server,
            what=f"blob store {settings.effective_blob_dir}",
            details=details,
            failure=f"{len(report.problems)} blob(s) failed" if report.problems else None,
        )

    report = _audited(settings, job, event)
    keys = ", ".join(f"{kid} {n:,}" for kid, n in sorted(report.by_key.items()))
    typer.echo(
        f"{report.total:,} blobs {'fully' if report.full else 'quickly'} verified in {report.seconds:.1f} s: "
        f"{len(report.problems):,} problem(s); by master key: {keys or '-'}"
    )
    for result in report.problems[:50]:
        typer.echo(f"  {result.address}  {result.status.value}: {result.detail}")
    if len(report.problems) > 50:
        typer.echo(f"  … {len(report.problems) - 50} more")
    if report.stale_pending:
        if clean_tmp:
            removed = store.backend.remove_stale_pending(86400.0)
            typer.echo(f"{removed} interrupted write(s) removed from tmp/")
        else:
            typer.echo(f"{len(report.stale_pending)} interrupted write(s) in tmp/ (remove with --clean-tmp)")
    if not report.ok:
        raise typer.Exit(1)


@blobs_app.command("destroy")
def destroy(
    address: Annotated[str, typer.Argument(help="The blob's address (64 hex digits).")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: the document's bytes are gone for good.")] = False,
    min_idle: Annotated[
        float, typer.Option("--min-idle", help="Keep the blob if a put used it less than this many seconds ago.")
    ] = 0.0,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Destroy one blob (crypto-shredding). The DSP's destruction job is the normal path: it knows whether another
    document still refers to the same bytes; this command does not."""
    from esante.blobs.audit import APPLICATION_ACTIVITY, blob_job_event
    from esante.blobs.backend import DeleteOutcome

    if not yes:
        typer.echo("error: destroying a blob cannot be undone; add --yes", err=True)
        raise typer.Exit(2)
    settings, store = _store(config, db, audited=True)

    def event(outcome: DeleteOutcome, operator: str, server: str) -> dict[str, Any]:
        return blob_job_event(
            job="destroy",
            event=APPLICATION_ACTIVITY,
            action="D",
            operator=operator,
            server=server,
            what=f"blob {address}",
            details={"outcome": outcome.value, "min-idle": min_idle},
            failure=None if outcome is DeleteOutcome.DELETED else f"not destroyed: {outcome.value}",
        )

    outcome = _audited(settings, lambda: store.delete(address, min_idle=min_idle), event)
    typer.echo(f"{address}: {outcome.value}")
    if outcome is not DeleteOutcome.DELETED:
        raise typer.Exit(1)
