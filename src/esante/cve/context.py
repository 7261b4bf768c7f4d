"""The CVE's wiring: the schedule, the product table, who vaccinates, the clock and the record listeners.

Built once by ``install_cve`` from the settings and kept on the platform (``platform.cve``); the hooks, the access
rule and the operations share it. ``listeners`` are called inside the transaction that writes (creates, updates or
deletes) an Immunization of a patient — e.g. the DSP-consent feature keeping the vaccination history document
current registers one with :meth:`CveContext.on_record_change`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from esante.cve.record.products import ProductTable, load_products
from esante.cve.schedule import Schedule, ScheduleUnavailable

if TYPE_CHECKING:
    from esante.config import Settings
    from esante.fhir.store import StoreSession

__all__ = ["CveContext", "RecordListener", "cve_context"]

RecordListener = Callable[["StoreSession", str], Awaitable[None]]
"""``(session, patient_id)``: an Immunization of this patient was written in this session's transaction."""


@dataclass
class CveContext:
    schedule: Schedule
    products: ProductTable
    vaccinator_professions: frozenset[str]
    clock: Callable[[], float] = time.time
    listeners: list[RecordListener] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: Settings) -> CveContext:
        professions = frozenset(p.strip() for p in settings.cve_vaccinator_professions.split(",") if p.strip())
        return cls(
            schedule=Schedule(settings.cve_schedule),
            products=load_products(settings.cve_products_file or None),
            vaccinator_professions=professions,
        )

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def today(self) -> date:
        return self.now().date()

    def on_record_change(self, listener: RecordListener) -> None:
        if listener not in self.listeners:
            self.listeners.append(listener)

    async def known_cvx(self) -> frozenset[str]:
        """CVX codes a record may carry: the schedule's and the product table's (the table's alone when the
        schedule cannot be loaded)."""
        codes = set(self.products.cvx_codes)
        try:
            data = await self.schedule.aget()
        except ScheduleUnavailable:  # the record still takes the table's vaccines
            return frozenset(codes)
        return frozenset(codes | set(data.cvx_map))


def cve_context(platform: Any) -> CveContext:
    """The platform's CVE context (``install_cve`` sets it)."""
    context = getattr(platform, "cve", None)
    if not isinstance(context, CveContext):
        raise RuntimeError("the CVE is not installed on this platform (esante.cve.plugin.install_cve)")
    return context
