"""One report run: chain pending audit events, collect, compute, write the files, audit the run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esante.mpi.operator_events import operator_event
from esante.mpi.report.collect import Progress, collect
from esante.mpi.report.figures import Figures, check_year, compute
from esante.mpi.report.render import write_report

if TYPE_CHECKING:
    from esante.app import Platform

EXPORT_TYPE = {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110106", "display": "Export"}
REPORT_SUBTYPE = {"system": "urn:esante:mpi-operation", "code": "identity-vigilance-report"}


@dataclass(frozen=True)
class ReportFiles:
    figures: Figures
    html: Path
    csv: Path


def default_out_dir(year: int) -> Path:
    return Path(f"mpi-report-{year}")


async def run_report(
    platform: Platform,
    year: int,
    out_dir: Path | None = None,
    operator: str = "operator",
    progress: Progress | None = None,
) -> ReportFiles:
    """Produce the report of ``year`` into ``out_dir`` (default ``./mpi-report-<year>/``); raises YearError.

    The audit journal is chained first, so the import and refused-write events already answered for are counted.
    """
    check_year(year)
    target = out_dir or default_out_dir(year)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{target} exists and is not a directory")
    if platform.auditor is not None:
        await platform.auditor.flush()
    figures = compute(await collect(platform.database, year, progress))
    html, csv = write_report(figures, target)
    if platform.auditor is not None:
        event = report_event(year, target, operator, platform.settings.effective_audience)
        await platform.auditor.record_events([event])
        await platform.auditor.flush()
    return ReportFiles(figures, html, csv)


def report_event(year: int, out_dir: Path, operator: str, server: str) -> dict[str, Any]:
    """One AuditEvent per run (DICOM 110106 Export): who produced the report of which year, where.

    The report holds aggregates only (no patient), so the event names no patient: the year and the output folder.
    """
    return operator_event(
        event=(EXPORT_TYPE["code"], EXPORT_TYPE["display"]),
        job=REPORT_SUBTYPE["code"],
        action="R",
        operator=operator,
        server=server,
        what=f"identity-vigilance report {year}",
        details={"year": year, "output": out_dir},
        entity_type="2",
        observer="esante mpi report",
    )
