"""Plugs the DSP's lifecycle, grants and access rule into a platform (the MHD interfaces install themselves beside
it, ``dsp/mhd``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from esante.dsp.access_caller import dsp_token_check
from esante.dsp.access_confidentiality import confidentiality_operations
from esante.dsp.access_rule import DspAccessRule
from esante.dsp.context import DspContext
from esante.dsp.grants_operations import grants_operations
from esante.dsp.habilitation import load_habilitation
from esante.dsp.hooks import DspHooks
from esante.dsp.lifecycle_operations import lifecycle_operations
from esante.dsp.mhd.plugin import install_mhd
from esante.dsp.model import DspSettings

if TYPE_CHECKING:
    from esante.app import Platform


def install_dsp(platform: Platform) -> DspContext:
    """Register the DSP on ``platform`` (idempotent) and return its context (also ``platform.dsp``): the access
    rule, the bearer-gate check that names the professional behind a token, the storage hooks (opening on
    certification, documents refused by a DSP that is not open, the grants' and Binaries' derived indexes) and the
    operations (lifecycle, grants, confidentiality)."""
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
    return context
