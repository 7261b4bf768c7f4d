"""How an operator's import command reports its rejected lines (shared by the MPI, HPD and WSE importers).

The first lines on the console, all of them in a CSV file when asked (``--rejects FILE``): a national file may
reject thousands of lines, which a console cannot show but a spreadsheet can.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from rich.console import Console

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
