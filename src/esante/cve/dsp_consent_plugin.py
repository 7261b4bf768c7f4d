"""Plugs the DSP consent of the vaccination record into a platform (``install_cve`` calls it): the store hooks that
queue a patient's document, the operations ``$cve-dsp-consent`` / ``$cve-dsp-status``, and the server's sync
task (every ``cve_dsp_sync_interval`` seconds; 0 turns it off, ``esante cve dsp-sync`` then does the work)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from esante.cve.context import CveContext
from esante.cve.dsp_consent_operations import dsp_consent_operations
from esante.cve.dsp_consent_sync import BackgroundSync, DspSync, install_queue_hooks

if TYPE_CHECKING:
    from esante.app import Platform

__all__ = ["install_dsp_consent"]


def install_dsp_consent(platform: Platform, context: CveContext) -> BackgroundSync | None:
    """Register the DSP consent on ``platform``; the background sync task when there is one."""
    interval = platform.settings.cve_dsp_sync_interval
    background = BackgroundSync(DspSync(platform, context), interval) if interval > 0 else None
    install_queue_hooks(context, platform.hooks, background.wake if background is not None else None)
    for operation in dsp_consent_operations(context):
        platform.operations.register(operation)
    if background is not None:

        async def start() -> None:
            background.start()

        platform.startup.append(start)
        platform.shutdown.append(background.stop)
    return background
