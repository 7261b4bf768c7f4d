"""Schedules shipped with the platform, in the CDC CDSi supporting-data XML format.

``lu/`` is the Luxembourg schedule (the CSMI calendar), authored by hand in the CDC format so that the same engine
evaluates it: one ``AntigenSupportingData-*.xml`` per antigen and ``ScheduleSupportingData.xml``. Every rule carries
an XML comment naming its source (docs/cve-schedule-lu.md lists the sources and what was taken from the CDC data).

The files are package data: they are read through :mod:`importlib.resources`, so the schedule loads from an
installed wheel as well as from the source tree.
"""

from __future__ import annotations

import shutil
import tempfile
from functools import cache
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from esante.cve.engine import SupportingData, load_supporting_data

__all__ = ["LUXEMBOURG", "load_luxembourg_schedule", "luxembourg_schedule_files"]

LUXEMBOURG = "lu"


def luxembourg_schedule_files() -> Traversable:
    """The packaged folder of the Luxembourg schedule (a resource: a real folder unless installed zipped)."""
    return resources.files(__name__).joinpath(LUXEMBOURG)


@cache
def load_luxembourg_schedule() -> SupportingData:
    """The Luxembourg schedule, XSD-validated and loaded once per process (the result is immutable and shared).

    Raises :class:`~esante.cve.engine.SupportingDataError` if a file does not validate, naming the file and line.
    """
    folder = luxembourg_schedule_files()
    if isinstance(folder, Path):
        return load_supporting_data(folder)
    # A zipped install: the loader reads a folder, so the few files are copied out once.
    with tempfile.TemporaryDirectory(prefix="esante-cve-lu-") as tmp:
        target = Path(tmp)
        for entry in folder.iterdir():
            if entry.name.endswith(".xml"):
                with entry.open("rb") as src, (target / entry.name).open("wb") as dst:
                    shutil.copyfileobj(src, dst)
        return load_supporting_data(target)
