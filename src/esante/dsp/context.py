"""What the DSP's parts share at run time: its settings, its clock and its habilitation matrix.

One :class:`DspContext` per platform (``install_dsp`` builds it and keeps it as ``platform.dsp``); the access rule,
the operations and the hooks capture it. Tests move its clock (``context.clock``) to cross a refusal window, the
end of a relationship or a retention period without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from esante.dsp.habilitation import Habilitation, load_habilitation
from esante.dsp.model import DspSettings

if TYPE_CHECKING:
    from esante.app import Platform


@dataclass
class DspContext:
    settings: DspSettings = field(default_factory=DspSettings)
    habilitation: Habilitation = field(default_factory=load_habilitation)
    clock: Callable[[], float] = time.time

    def now(self) -> int:
        """The time in epoch seconds."""
        return int(self.clock())

    def now_micros(self) -> int:
        return int(self.clock() * 1_000_000)


def dsp_context(platform: Platform) -> DspContext:
    """The DSP context of an installed platform (``install_dsp`` must have run)."""
    context: Any = getattr(platform, "dsp", None)
    if not isinstance(context, DspContext):
        raise RuntimeError("the DSP is not installed on this platform (install_dsp)")
    return context
