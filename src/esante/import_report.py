"""How an operator's import command reports its rejected lines (shared by the MPI, HPD and WSE importers).

The first lines on the console, all of them in a CSV file when asked (``--rejects FILE``): a national file may
reject thousands of lines, which a console cannot show but a spreadsheet can.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console

from esante.fhir.model import micros_to_instant

SHOWN = 20  # rejections printed on the console; the rest only in the CSV file


class Rejected(Protocol):
    @property
    def line(self) -> int: ...

    @property
    def reason(self) -> str: ...


def report_rejections(console: Console, rejected: Sequence[Rejected], rejects: Path | None) -> None:
    """Print the first :data:`SHOWN` rejections and write them all to ``rejects`` (line, reason) when given."""
    for rejection in rejected[:SHOWN]:
        console.print(f"  line {rejection.line}: {rejection.reason}")
    if len(rejected) > SHOWN:
        console.print(f"  … {len(rejected) - SHOWN} more" + (f" in {rejects}" if rejects else ""))
    if rejects is not None:
        with rejects.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["line", "reason"])
            writer.writerows((r.line, r.reason) for r in rejected)


def import_audit_event(
    *, job_system: str, job: str, command: str, file_name: str, operator: str, server: str, counts: dict[str, int]
) -> dict[str, Any]:
    """One AuditEvent for an operator's import run (DICOM 110107 Import): who imported which file, with which counts.

    A national file touches up to a million records: one event naming the file and the counts stands for the run
    (every resource written keeps its own version history). ``counts`` must hold ``rejected``; any rejection makes
    the outcome 4 (minor failure) with the number in ``outcomeDesc``.
    """
    rejected = counts["rejected"]
    return {
        "resourceType": "AuditEvent",
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110107", "display": "Import"},
        "subtype": [{"system": job_system, "code": job}],
        "action": "C",
        "recorded": micros_to_instant(int(time.time() * 1_000_000)),
        "outcome": "4" if rejected else "0",
        **({"outcomeDesc": f"{rejected} line(s) rejected"} if rejected else {}),
        "agent": [
            {
                "type": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "AUT"}]
                },
                "who": {"identifier": {"system": "urn:esante:operator", "value": operator}},
                "requestor": True,
            }
        ],
        "source": {"site": server, "observer": {"display": command}},
        "entity": [
            {
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
                "what": {"display": file_name},
                "detail": [{"type": name, "valueString": str(value)} for name, value in counts.items()],
            }
        ],
    }
