"""Plugs the HPD into a platform: its code systems (written at start-up), who may read them, and the directory's
services (mCSD searches and the right to practise register theirs here too)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from esante.hpd.mcsd import install_mcsd
from esante.hpd.practise import install_practise
from esante.hpd.terminology import TerminologyRule, ensure_code_systems

if TYPE_CHECKING:
    from esante.app import Platform


def install_hpd(platform: Platform) -> None:
    """Register the HPD on ``platform``."""
    platform.policy.add_rule(TerminologyRule())
    install_mcsd(platform)  # mCSD declarations and the public directory search (hpd/mcsd.py)
    install_practise(platform)  # the right to practise: operations, token and login checks (hpd/practise.py)

    async def code_systems_at_start() -> None:
        await ensure_code_systems(platform.store)

    platform.startup.append(code_systems_at_start)
