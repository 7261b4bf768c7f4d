"""Plugs the CVE (vaccination record) into a platform: its access rule, the bearer-gate check naming the
vaccinator behind a token, the Immunization hooks and the operations (``$parse-gs1``, ``$immds-forecast``,
``$cve-authorize``, ``$cve-revoke``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from esante.cve.access_caller import cve_token_check
from esante.cve.access_rule import CveAccessRule
from esante.cve.consent_operations import consent_operations
from esante.cve.context import CveContext
from esante.cve.dsp_consent_plugin import install_dsp_consent
from esante.cve.immds_operation import forecast_operations
from esante.cve.record.gs1_operation import parse_gs1_operation
from esante.cve.record.hooks import CveRecordHooks
from esante.cve.reminders_background import install_reminders

if TYPE_CHECKING:
    from esante.app import Platform

__all__ = ["install_cve"]


def install_cve(platform: Platform) -> CveContext:
    """Register the CVE on ``platform`` (idempotent) and return its context (also ``platform.cve``).

    The product table is read here (a bad ``cve_products_file`` stops the start-up with its reason); the schedule
    is loaded on first use (``cve_schedule``).
    """
    existing = getattr(platform, "cve", None)
    if isinstance(existing, CveContext):
        return existing
    context = CveContext.from_settings(platform.settings)
    platform.cve = context  # type: ignore[attr-defined]
    platform.policy.add_rule(CveAccessRule(lambda: context.clock()))
    platform.resource_server.add_check(cve_token_check(context.vaccinator_professions))
    CveRecordHooks(context).install(platform.hooks)
    for operation in (
        parse_gs1_operation(context),
        *forecast_operations(platform.service, context),
        *consent_operations(context),
    ):
        platform.operations.register(operation)
    install_dsp_consent(platform, context)  # the DSP consent: queue hooks, $cve-dsp-consent, the sync task
    install_reminders(platform, context)  # the server's reminders run, when cve_reminders_interval_hours > 0
    return context
