"""Who may use the WSE: the software of pharmacies, laboratories and the CGDIS (system clients of those kinds), with
the scopes of the operation — and the kind each use is counted under.

* :func:`client_kind_check` (a bearer-gate check, ``ResourceServer.add_check``) records the OAuth client's kind
  (``pharmacy``, ``laboratory``, ``cgdis``, ``hospital``…) in ``caller.attributes["client_kind"]`` for system
  callers. A client's kind is fixed at registration (the registry has no way to change it), so it is looked up once
  per client and process; suspension and revocation are still checked live on every request by the gate itself.
* :class:`WseCallerRule` (an access rule) vetoes the WSE operations for every other caller — patients,
  professionals, staff, other establishment software — whatever their scopes: 403.

The scopes (the operations declare the permission, ``OperationDefinition.requires``):
``system/CoverageEligibilityRequest.c`` for ``$check``, ``system/Practitioner.r`` for ``$wse-prescriber-check``.
"""

from __future__ import annotations

from collections.abc import Iterable

from esante.db.engine import Connection
from esante.security.pdp.decision import AccessRequest, Grant
from esante.security.pdp.restrictions import EVERYTHING, Restriction
from esante.security.policy import Caller
from esante.security.tokens import TokenClaims

ELIGIBILITY_OPERATION = "check"
PRESCRIBER_OPERATION = "wse-prescriber-check"
WSE_OPERATIONS = frozenset({ELIGIBILITY_OPERATION, PRESCRIBER_OPERATION})
_TYPES = frozenset({"CoverageEligibilityRequest", "Practitioner"})


class ClientKinds:
    """client id → kind, read from ``oauth_client`` once per client (the kind never changes)."""

    def __init__(self) -> None:
        self._kinds: dict[str, str] = {}

    async def check(self, claims: TokenClaims, caller: Caller, conn: Connection) -> None:
        if caller.kind != "system":
            return
        client_id = claims.client_id
        if client_id not in self._kinds:
            kind = await conn.fetchval("SELECT kind FROM oauth_client WHERE client_id = ?", (client_id,))
            if kind is None:
                return  # the CLI's own client (esante-cli): no kind, not a WSE caller; not cached (may register)
            if len(self._kinds) > 10_000:
                self._kinds.clear()
            self._kinds[client_id] = str(kind)
        caller.attributes["client_kind"] = self._kinds[client_id]


def caller_kind(caller: Caller) -> str | None:
    kind = caller.attributes.get("client_kind")
    return kind if isinstance(kind, str) else None


class WseCallerRule:
    """Veto the WSE operations for any caller that is not the software of a WSE client kind."""

    name = "wse-callers"

    def __init__(self, kinds: Iterable[str]) -> None:
        self.kinds = frozenset(kinds)

    def is_wse_caller(self, caller: Caller) -> bool:
        return caller.kind == "system" and caller_kind(caller) in self.kinds

    def grants(self, request: AccessRequest) -> Iterable[Grant]:
        return ()

    def vetoes(self, request: AccessRequest) -> Iterable[Restriction]:
        action = request.action
        if (
            action.interaction == "operation"
            and action.operation in WSE_OPERATIONS
            and request.resource_type in _TYPES
            and not self.is_wse_caller(request.caller)
        ):
            yield EVERYTHING
