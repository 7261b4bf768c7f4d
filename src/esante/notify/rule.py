"""Who reads notifications, in the policy seam.

Patients and their assistants need no rule of ours: R4's Patient compartment holds Communications by subject,
sender and recipient, so the ``patient-compartment`` rule already lets them read and search theirs (and no one
else's). Professionals get, from this rule, read and search of the notifications **addressed to them** — the
Communications carrying a notification kind whose recipient is the Practitioner their token names (``fhirUser``);
nothing else of the type. The professional rule's veto (no right to practise) still applies on top.
"""

from __future__ import annotations

from collections.abc import Iterable

from esante.notify.kinds import KIND_SYSTEM
from esante.security.pdp.decision import AccessRequest, Grant
from esante.security.pdp.restrictions import MatchesQuery, Restriction
from esante.security.pdp.rules.directory import READ_LETTERS


class NotificationRule:
    name = "notification-recipient"

    def grants(self, request: AccessRequest) -> Iterable[Grant]:
        caller = request.caller
        if caller.kind != "professional" or request.resource_type != "Communication":
            return
        if request.letter not in READ_LETTERS:
            return
        fhir_user = caller.attributes.get("fhir_user")
        if not isinstance(fhir_user, str) or not fhir_user.startswith("Practitioner/"):
            return
        yield Grant(self.name, MatchesQuery((("recipient", fhir_user), ("category", f"{KIND_SYSTEM}|"))))

    def vetoes(self, request: AccessRequest) -> Iterable[Restriction]:
        return ()
