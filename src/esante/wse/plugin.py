"""Plugs the WSE into a platform: the affiliation index (store hooks), the two operations, who may call them and the
use counters (flushed in the background, and at shutdown). The funds' Organizations are written by each affiliation
import (``insurers.py``), not at start-up: a platform without affiliations has no funds in its directory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from esante.wse.affiliation_store import AffiliationIndex
from esante.wse.callers import ClientKinds, WseCallerRule
from esante.wse.eligibility import EligibilityCheck
from esante.wse.model import InsurerTable, load_insurers
from esante.wse.prescriber import PrescriberCheck
from esante.wse.prescribing import load_table
from esante.wse.usage import UsageCounter

if TYPE_CHECKING:
    from esante.app import Platform


@dataclass
class Wse:
    """What the WSE installed on a platform (the CLI's import and the tests use its parts)."""

    index: AffiliationIndex
    insurers: InsurerTable
    usage: UsageCounter
    eligibility: EligibilityCheck
    prescriber: PrescriberCheck


def install_wse(platform: Platform) -> Wse:
    """Register the WSE on ``platform``."""
    settings = platform.settings
    insurers = load_insurers(settings.wse_insurers_file)
    table = load_table(settings.wse_prescribing_file)
    index = AffiliationIndex()
    index.install(platform.hooks)
    usage = UsageCounter(platform.database, max(1, settings.wse_usage_flush_seconds))
    eligibility = EligibilityCheck(insurers, usage, settings.wse_past_days, settings.wse_future_days)
    prescriber = PrescriberCheck(table, usage, settings.wse_past_days, settings.wse_future_days)
    platform.operations.register(eligibility.definition())
    platform.operations.register(prescriber.definition())
    kinds = [k.strip() for k in settings.wse_client_kinds.split(",") if k.strip()]
    platform.policy.add_rule(WseCallerRule(kinds))
    platform.resource_server.add_check(ClientKinds().check)
    platform.shutdown.append(usage.close)
    wse = Wse(index, insurers, usage, eligibility, prescriber)
    platform.wse = wse  # type: ignore[attr-defined]
    return wse
