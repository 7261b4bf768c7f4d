"""``esante cve``: operator commands of the vaccination record (the CDSi conformance harness for now)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from esante.cli_support import ConfigOption, DbOption, open_platform
from esante.cli_support import operator_settings as _settings
from esante.config import Settings

if TYPE_CHECKING:
    from esante.app import Platform

cve_app = typer.Typer(help="CVE: vaccination record and CDSi recommendation engine.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
T = TypeVar("T")


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]{message}[/red]", soft_wrap=True)
    return typer.Exit(2)


@cve_app.command("conformance")
def conformance(
    cases: Annotated[Path, typer.Option("--cases", help="CDC CDSi test-case CSV (healthy or conditions layout).")],
    data: Annotated[Path, typer.Option("--data", help="Folder of CDSi supporting data XML.")],
    report_path: Annotated[Path | None, typer.Option("--report", help="Write a JSON report of the failures.")] = None,
) -> None:
    """Run CDC test cases against the engine; a case passes only if every populated expected field matches."""
    from esante.cve.conformance import ConformanceError, check_case, read_cases, report
    from esante.cve.engine import SupportingDataError, load_supporting_data

    try:
        schedule = load_supporting_data(data)
        test_cases = read_cases(cases)
    except (SupportingDataError, ConformanceError) as exc:
        console.print(f"[red]{exc}[/red]", soft_wrap=True)
        raise typer.Exit(2) from exc
    results = []
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("CDSi cases", total=len(test_cases))
        for case in test_cases:
            try:
                results.append(check_case(schedule, case))
            except ConformanceError as exc:
                console.print(f"[red]{case.case_id}: {exc}[/red]", soft_wrap=True)
                raise typer.Exit(2) from exc
            progress.advance(task)
    summary = report(results)
    table = Table(title=f"CDSi conformance: {cases.name}")
    for column in ("vaccine group", "cases", "passed", "failed", "pass rate"):
        table.add_column(column, justify="left" if column == "vaccine group" else "right")
    for name, counts in sorted(summary["groups"].items()):
        total = counts["passed"] + counts["failed"]
        table.add_row(name, str(total), str(counts["passed"]), str(counts["failed"]), f"{counts['passed'] / total:.1%}")
    console.print(table)
    console.print(f"pass rate {summary['pass_rate']:.2%}")
    if report_path is not None:
        report_path.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"{summary['passed']} passed, {summary['failed']} failed")


# --- reminders and the DSP consent (docs/cve.md "Reminders", "DSP consent") ----------------------------------------
def _on_platform(settings: Settings, action: Callable[[Platform], Awaitable[T]]) -> T:
    """Run ``action`` on the platform built from ``settings`` (its hooks, the CVE's context, the audit trail)."""

    async def main() -> T:
        async with open_platform(settings) as platform:
            return await action(platform)

    return asyncio.run(main())


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


@cve_app.command("reminders")
def reminders(
    on: Annotated[str | None, typer.Option("--date", help="Remind what is due on this day (YYYY-MM-DD).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Look at N patients at most.")] = None,
    batch: Annotated[int | None, typer.Option("--batch", help="Patients per transaction.")] = None,
    workers: Annotated[int, typer.Option("--workers", help="Processes forecasting in parallel.")] = 1,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Notify every patient with a CVE of the vaccinations due or overdue (never twice for the same dose)."""
    from esante.cve.context import cve_context
    from esante.cve.reminders import ReminderJob, ReminderReport, count_patients
    from esante.cve.schedule import ScheduleUnavailable

    day = None
    if on is not None:
        try:
            day = date.fromisoformat(on)
        except ValueError as exc:
            raise _fail(f"--date must be a date YYYY-MM-DD, not {on!r}") from exc
    if limit is not None and limit <= 0:
        raise _fail("--limit must be positive")
    if (batch is not None and batch <= 0) or workers <= 0:
        raise _fail("--batch and --workers must be positive")
    settings = _settings(config, db)

    async def action(platform: Platform) -> ReminderReport:
        context = cve_context(platform)
        size = batch or max(1, settings.cve_reminders_batch)
        job = ReminderJob(
            platform.store, context, batch=size, workers=workers, lead_days=settings.cve_reminders_lead_days
        )
        total = await count_patients(platform.store)
        with _progress() as progress:
            task = progress.add_task("patients", total=min(total, limit) if limit else total)
            return await job.run(day, limit, lambda n: progress.advance(task, n))

    try:
        report = _on_platform(settings, action)
    except ScheduleUnavailable as exc:
        raise _fail(str(exc)) from exc
    table = Table(title=f"CVE reminders for {report.on}")
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in (
        ("patients with a CVE", report.patients),
        ("doses due or overdue", report.due),
        ("... reminded before", report.already),
        ("... reminded now", report.reminded),
        ("notifications created", report.notifications),
        ("patients skipped", report.skipped),
    ):
        table.add_row(name, str(value))
    console.print(table)
    for reason, count in sorted(report.reasons.items()):
        console.print(f"  skipped, {reason}: {count}")
    rate = report.patients / report.seconds if report.seconds else 0.0
    print(f"{report.notifications} notifications, {report.patients} patients in {report.seconds:.1f} s ({rate:.0f}/s)")


@cve_app.command("dsp-sync")
def dsp_sync(
    limit: Annotated[int | None, typer.Option("--limit", help="Handle N patients at most.")] = None,
    requeue: Annotated[
        bool, typer.Option("--requeue", help="First queue every patient whose DSP consent is in force.")
    ] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """File the vaccination-history documents the DSP consent asks for (what the server's task does)."""
    from esante.cve import dsp_consent_queue as queue
    from esante.cve.context import cve_context
    from esante.cve.dsp_consent_sync import DspSync, SyncReport, consenting_patients

    if limit is not None and limit <= 0:
        raise _fail("--limit must be positive")
    settings = _settings(config, db)

    async def action(platform: Platform) -> tuple[SyncReport, dict[str, int]]:
        context = cve_context(platform)
        if requeue:
            async with platform.database.transaction() as conn:
                patients = await consenting_patients(conn)
                await queue.request_all(conn, patients, int(context.clock() * 1_000_000))
        sync = DspSync(platform, context)
        async with platform.database.read() as conn:
            due = await queue.due_count(conn, int(sync.clock()))
        with _progress() as progress:
            task = progress.add_task("patients", total=min(due, limit) if limit else due)
            report = await sync.run_once(limit, lambda n: progress.advance(task, n))
        async with platform.database.read() as conn:
            return report, await queue.counts(conn)

    report, counts = _on_platform(settings, action)
    console.print(
        f"filed {report.filed}, unchanged {report.unchanged}, waiting for the DSP {report.waiting}, "
        f"not filed {report.not_filed}, no consent {report.stopped}, failed {report.failed}"
    )
    for reason, count in sorted(report.reasons.items()):
        console.print(f"  {reason}: {count}")
    console.print("queue: " + ", ".join(f"{status} {n}" for status, n in counts.items()))
    if report.failed:
        raise typer.Exit(1)
