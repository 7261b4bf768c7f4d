"""Professionals: the directory. Clinical data comes only from the services' rules (DSP access model) — default
deny until they grant it."""

from __future__ import annotations

from collections.abc import Iterable

from esante.security.pdp.decision import AccessRequest, Grant
from esante.security.pdp.restrictions import EVERYTHING, Restriction
from esante.security.pdp.rules.directory import DIRECTORY_TYPES, READ_LETTERS


class ProfessionalRule:
    name = "professional-directory"

    def grants(self, request: AccessRequest) -> Iterable[Grant]:
        if (
            request.caller.kind == "professional"
            and request.letter in READ_LETTERS
            and request.resource_type in DIRECTORY_TYPES
        ):
            yield Grant(self.name, EVERYTHING)

    def vetoes(self, request: AccessRequest) -> Iterable[Restriction]:
        return ()
