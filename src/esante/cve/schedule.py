"""Which vaccination schedule the CVE follows: ONE setting, ``cve_schedule``.

- ``lu`` (the default): the Luxembourg schedule packaged in ``esante/cve/schedules/lu`` (CDSi supporting-data
  XML authored for the CSMI calendar);
- any other value: a folder of CDSi supporting-data XML, e.g. the CDC's ``supporting-data-4.64``.

The schedule is loaded (XSD-validated, ~1 s) on first use, in a worker thread, and kept for the life of the
process: one immutable :class:`~esante.cve.engine.SupportingData` per folder, shared by every request.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from esante.cve.engine import SupportingData, SupportingDataError, load_supporting_data

__all__ = ["PACKAGED", "Schedule", "ScheduleUnavailable", "resolve_folder"]

PACKAGED = "lu"
_CACHE: dict[Path, SupportingData] = {}
_LOCK = threading.Lock()


class ScheduleUnavailable(RuntimeError):
    """The configured schedule cannot be used (not installed, unreadable or invalid)."""


def resolve_folder(setting: str) -> Path:
    """The folder the setting names (``lu`` → the packaged schedule)."""
    value = (setting or PACKAGED).strip()
    if value == PACKAGED:
        folder = Path(str(resources.files("esante.cve").joinpath("schedules", PACKAGED)))
        if not (folder / "ScheduleSupportingData.xml").is_file():
            raise ScheduleUnavailable(
                "the packaged Luxembourg schedule (cve_schedule = 'lu') is not installed in this version; set "
                "cve_schedule (ESANTE_CVE_SCHEDULE) to a folder of CDSi supporting data"
            )
        return folder
    folder = Path(value).expanduser()
    if not folder.is_dir():
        raise ScheduleUnavailable(f"cve_schedule names no folder: {value}")
    return folder.resolve()


def _load(folder: Path) -> SupportingData:
    with _LOCK:
        data = _CACHE.get(folder)
        if data is None:
            try:
                data = load_supporting_data(folder)
            except SupportingDataError as exc:
                raise ScheduleUnavailable(f"the schedule in {folder.name} cannot be used: {exc}") from exc
            _CACHE[folder] = data
        return data


@dataclass
class Schedule:
    """The configured schedule, loaded once (``get``, or ``aget`` from async code)."""

    setting: str
    _data: SupportingData | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """What the schedule is called in results (``lu``, or the folder's name)."""
        value = (self.setting or PACKAGED).strip()
        return PACKAGED if value == PACKAGED else Path(value).name

    def get(self) -> SupportingData:
        if self._data is None:
            self._data = _load(resolve_folder(self.setting))
        return self._data

    async def aget(self) -> SupportingData:
        if self._data is not None:
            return self._data
        return await asyncio.to_thread(self.get)

    def loaded(self) -> SupportingData | None:
        """The schedule if it is already loaded (or loads without error), else None: never raises."""
        try:
            return self.get()
        except ScheduleUnavailable:
            return None
