"""``esante notify …``: the operator's commands for notification e-mail (delivery, queue, choices, SMTP check)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from esante.cli_support import ConfigOption, DbOption, with_database
from esante.cli_support import operator_settings as _settings
from esante.config import Settings, load_settings
from esante.db.engine import Database

notify_app = typer.Typer(help="Notifications: e-mail delivery, the outbox, recipients' choices.", no_args_is_help=True)
console = Console(stderr=True)
out = Console()
T = TypeVar("T")


def _run(settings: Settings, action: Callable[[Database], Awaitable[T]]) -> T:
    return asyncio.run(with_database(settings, action, pool_size=2))  # delivery reads while it records


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]{message}[/red]")
    return typer.Exit(2)


@notify_app.command("deliver")
def deliver(
    limit: Annotated[int | None, typer.Option("--limit", help="Send at most N e-mails (default: the cap).")] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Send the due notification e-mails once (what the server's background task does every interval)."""
    from esante.notify.delivery import DeliveryReport, DeliveryWorker
    from esante.notify.kinds import KindError, catalogue
    from esante.notify.settings import NotifySettingsError, delivery_config

    settings = _settings(config, db)
    try:
        worker_config = delivery_config(settings)
        texts = catalogue(settings.notify_templates_file)
    except (NotifySettingsError, KindError) as exc:
        raise _fail(str(exc)) from exc
    if limit is not None and limit <= 0:
        raise _fail("--limit must be positive")

    async def action(database: Database) -> DeliveryReport:
        from esante.notify import outbox

        async with database.read() as conn:
            due = (await outbox.counts(conn))["pending"]
        total = min(due, limit or worker_config.rate, worker_config.rate)
        worker = DeliveryWorker(database, worker_config, texts)
        with Progress(
            TextColumn("e-mails"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        ) as progress:
            task = progress.add_task("deliver", total=total)
            return await worker.run_once(lambda n: progress.advance(task, n), limit=limit)

    report = _run(settings, action)
    out.print(
        f"sent {report.sent}, retry later {report.retried}, dead {report.dead}, skipped {report.skipped}, "
        f"expired {report.expired}" + (", lost lease " + str(report.lost) if report.lost else "")
    )
    for reason, count in sorted(report.reasons.items()):
        out.print(f"  {count} x {reason}")
    if report.unreachable:
        raise _fail("the SMTP server was unreachable: the e-mails wait for the next run")


@notify_app.command("status")
def status(
    dead: Annotated[bool, typer.Option("--dead", help="List the dead letters too.")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Count the outbox's rows by e-mail status (pending, sent, skipped, dead, expired)."""
    settings = _settings(config, db)

    async def action(database: Database) -> tuple[dict[str, int], list[tuple[object, ...]]]:
        from esante.notify import outbox

        async with database.read() as conn:
            counts = await outbox.counts(conn)
            rows = (
                await conn.fetch(
                    "SELECT id, kind, attempts, created_at, reason FROM notify_outbox WHERE status = 'dead' "
                    "ORDER BY created_at, id LIMIT 1000"
                )
                if dead
                else []
            )
        return counts, rows

    counts, rows = _run(settings, action)
    table = Table("status", "notifications")
    for name, count in counts.items():
        table.add_row(name, str(count))
    out.print(table)
    if rows:
        dead_table = Table("id", "kind", "attempts", "created", "reason")
        for row_id, kind, attempts, created, reason in rows:
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(int(str(created))))
            dead_table.add_row(str(row_id), str(kind), str(attempts), when, str(reason or ""))
        out.print(dead_table)


@notify_app.command("requeue")
def requeue(
    ids: Annotated[list[str] | None, typer.Argument(help="Notification ids (default: all of the status).")] = None,
    status: Annotated[str, typer.Option("--status", help="Which rows: dead, expired or skipped.")] = "dead",
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Queue e-mails again (e.g. the dead letters once the SMTP relay is fixed), attempts reset."""
    if status not in ("dead", "expired", "skipped"):
        raise _fail("--status must be dead, expired or skipped")
    settings = _settings(config, db)

    async def action(database: Database) -> int:
        from esante.notify import outbox

        async with database.transaction() as conn:
            return await outbox.requeue(conn, int(time.time()), tuple(ids or ()), status)

    count = _run(settings, action)
    out.print(f"{count} e-mail(s) queued again")


@notify_app.command("preferences")
def preferences(
    recipient: Annotated[str, typer.Argument(help="Patient/<id> or Practitioner/<id>.")],
    email: Annotated[str | None, typer.Option("--email", help="on, off or default (remove the choice).")] = None,
    kind: Annotated[str, typer.Option("--kind", help="A notification kind, or * for every kind.")] = "*",
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Show, or set with --email, whether a recipient's notifications are e-mailed (e.g. on a helpdesk call)."""
    from esante.notify.kinds import known_kinds
    from esante.notify.model import RECIPIENT_TYPES, reference_parts

    parts = reference_parts(recipient)
    if parts is None or parts[0] not in RECIPIENT_TYPES:
        raise _fail(f"recipient must be Patient/<id> or Practitioner/<id>, not {recipient!r}")
    kinds = known_kinds()
    if kind != "*" and kind not in kinds:
        raise _fail(f"unknown kind {kind!r} (known: {', '.join(sorted(kinds))})")
    choice: bool | None = None
    if email is not None:
        if email not in ("on", "off", "default"):
            raise _fail("--email must be on, off or default")
        choice = None if email == "default" else email == "on"
    settings = _settings(config, db)

    async def action(database: Database) -> dict[tuple[str, str], bool]:
        from esante.notify import outbox

        if email is not None:
            async with database.transaction() as conn:
                await outbox.set_choice(conn, recipient, kind, choice, int(time.time()))
        async with database.read() as conn:
            return await outbox.email_choices(conn, [recipient])

    choices = _run(settings, action)
    from esante.notify.outbox import wants_email

    table = Table("kind", "e-mail", "own choice")
    for code in ["*", *sorted(kinds)]:
        wanted = wants_email(choices, recipient, code, settings.notify_email_default)
        table.add_row(code, "on" if wanted else "off", "yes" if (recipient, code) in choices else "")
    out.print(table)


@notify_app.command("test-email")
def test_email(
    to: Annotated[str, typer.Option("--to", help="The address to send the test message to.")],
    config: ConfigOption = None,
) -> None:
    """Send one fixed test message with the configured SMTP settings (checks host, TLS, login, sender)."""
    from email.message import EmailMessage
    from email.utils import formatdate, make_msgid

    from esante.notify.email import domain_of, valid_address
    from esante.notify.settings import NotifySettingsError, delivery_config
    from esante.notify.smtp import send_all

    settings = load_settings(config)
    try:
        worker_config = delivery_config(settings)
    except NotifySettingsError as exc:
        raise _fail(str(exc)) from exc
    if not valid_address(to):
        raise _fail(f"--to is not an e-mail address: {to!r}")
    message = EmailMessage()
    message["From"] = worker_config.email.from_address
    message["To"] = to
    message["Subject"] = "eSanté: test of the notification e-mail settings"
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=domain_of(worker_config.email.from_address))
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("This message checks the eSanté platform's SMTP settings. No action is needed.\n")
    [result] = send_all(worker_config.smtp, [("test", message)])
    if result.outcome != "sent":
        raise _fail(f"not sent ({result.outcome}): {result.reason}")
    out.print(f"sent through {worker_config.smtp.host}:{worker_config.smtp.port} ({worker_config.smtp.security})")
