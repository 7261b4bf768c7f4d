"""System clients (establishment software, SMART Backend Services): what their token's ``system/`` scopes allow.

The authorization server never grants a client more than its registered scopes, so the token's scopes are the
client's rights; the engine applies them (with their granular queries) like any other caller's scopes.
"""

from __future__ import annotations

from collections.abc import Iterable

from esante.security.pdp.decision import AccessRequest, Grant
from esante.security.pdp.restrictions import EVERYTHING, Restriction


class SystemClientRule:
    name = "system-scopes"

    def grants(self, request: AccessRequest) -> Iterable[Grant]:
        if request.caller.kind == "system":
            yield Grant(self.name, EVERYTHING)

    def vetoes(self, request: AccessRequest) -> Iterable[Restriction]:
        return ()
