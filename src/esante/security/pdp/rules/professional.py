"""Professionals: the directory. Clinical data comes only from the services' rules (DSP access model) — default
deny until they grant it.

A professional whose right to practise is suspended or withdrawn has no right at all: the bearer gate already
refuses their tokens (the HPD's token check), and this rule vetoes everything for a caller whose
``right_to_practise`` attribute (recorded by that check) is anything but ``active`` — so a rule of a later service
that forgets to ask still grants nothing. Services' rules call :func:`practising` before granting a professional
anything (the DSP's trusted circle, therapeutic relationships, the CVE's vaccinators).
"""

from __future__ import annotations

from collections.abc import Iterable

from esante.security.pdp.decision import AccessRequest, Grant
from esante.security.pdp.restrictions import EVERYTHING, Restriction
from esante.security.pdp.rules.directory import DIRECTORY_TYPES, READ_LETTERS
from esante.security.policy import Caller

RIGHT_TO_PRACTISE = "right_to_practise"  # caller attribute: active | suspended | withdrawn (set by the HPD's check)
ACTING_PROFESSIONAL_KINDS = frozenset({"professional", "system"})


def practising(caller: Caller) -> bool:
    """False when the caller speaks for a professional whose right to practise is not active.

    The attribute is set by the HPD's token check for professionals and for system clients acting for one (IUA
    ``national_provider_identifier``); a caller it did not look at (no HPD installed, no professional) counts as
    practising, the gate being where the right is enforced first.
    """
    return caller.attributes.get(RIGHT_TO_PRACTISE, "active") == "active"


class ProfessionalRule:
    name = "professional-directory"

    def grants(self, request: AccessRequest) -> Iterable[Grant]:
        if (
            request.caller.kind == "professional"
            and practising(request.caller)
            and request.letter in READ_LETTERS
            and request.resource_type in DIRECTORY_TYPES
        ):
            yield Grant(self.name, EVERYTHING)

    def vetoes(self, request: AccessRequest) -> Iterable[Restriction]:
        if request.caller.kind in ACTING_PROFESSIONAL_KINDS and not practising(request.caller):
            yield EVERYTHING  # no right to practise: no right at all, whatever another rule grants
