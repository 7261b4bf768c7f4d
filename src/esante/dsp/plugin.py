"""Plugs the DSP's lifecycle, grants and access rule into a platform (the MHD interfaces install themselves beside
it, ``dsp/mhd``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from esante.dsp.access_caller import dsp_token_check
from esante.dsp.access_confidentiality import confidentiality_operations
from esante.dsp.access_log import NAME as ACCESS_LOG
from esante.dsp.access_log import access_log_operation
from esante.dsp.access_log_capture import AccessLogCapture
from esante.dsp.access_rule import DspAccessRule
from esante.dsp.context import DspContext
from esante.dsp.grants_operations import grants_operations
from esante.dsp.habilitation import load_habilitation
from esante.dsp.hooks import DspHooks
from esante.dsp.lifecycle import on_destroy
from esante.dsp.lifecycle_operations import lifecycle_operations
from esante.dsp.mhd.classes import document_classes
from esante.dsp.mhd.plugin import install_mhd
from esante.dsp.model import DspSettings
from esante.dsp.notices import NewDocumentNotices, destroy_notifications
from esante.dsp.notices_openings import BackgroundOpeningNotices

if TYPE_CHECKING:
    from esante.app import Platform


def install_dsp(platform: Platform) -> DspContext:
    """Register the DSP on ``platform`` (idempotent) and return its context (also ``platform.dsp``): the access
    rule, the bearer-gate check that names the professional behind a token, the storage hooks (opening on
    certification, documents refused by a DSP that is not open, the grants' and Binaries' derived indexes), the
    operations (lifecycle, grants, confidentiality) and the patient-facing features (access log, notices)."""
    existing = getattr(platform, "dsp", None)
    if isinstance(existing, DspContext):
        return existing
    settings = platform.settings
    context = DspContext(
        settings=DspSettings.from_settings(settings),
        habilitation=load_habilitation(settings.dsp_habilitation_file or None),
    )
    platform.dsp = context  # type: ignore[attr-defined]
    platform.policy.add_rule(DspAccessRule(context))
    platform.resource_server.add_check(dsp_token_check(context))
    DspHooks(context).install(platform.hooks)
    for operation in (
        *lifecycle_operations(context),
        *grants_operations(context),
        *confidentiality_operations(context),
    ):
        platform.operations.register(operation)
    install_mhd(platform)  # the IHE MHD document interfaces (ITI-65/66/67/68): dsp/mhd/plugin.py
    _install_patient_features(platform, context)
    return context


def _install_patient_features(platform: Platform, context: DspContext) -> None:
    """The access log (capacities recorded in the audit trail, ``$dsp-access-log``) and the notices (a new
    document, in its transaction; the opening, by a background sweep)."""
    platform.operations.register(access_log_operation(platform))
    platform.router.audit_readers.add(ACCESS_LOG)
    if platform.auditor is not None:
        platform.auditor.add_annotator(AccessLogCapture(platform.database, context))
    classes = document_classes(platform.settings.mhd_document_classes_file or "")
    NewDocumentNotices(context, classes).install(platform.hooks)
    on_destroy(destroy_notifications)  # a destroyed DSP's notifications go with it
    interval = platform.settings.dsp_opening_notice_interval
    if interval > 0:
        sweep = BackgroundOpeningNotices(platform.database, platform.store, context, interval)

        async def start() -> None:
            sweep.start()

        platform.startup.append(start)
        platform.shutdown.append(sweep.stop)
