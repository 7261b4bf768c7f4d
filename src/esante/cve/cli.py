"""``esante cve``: operator commands of the vaccination record (the CDSi conformance harness for now)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

cve_app = typer.Typer(help="CVE: vaccination record and CDSi recommendation engine.", no_args_is_help=True)
console = Console()


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
