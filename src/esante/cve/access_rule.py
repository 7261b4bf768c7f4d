"""THE CVE access rule: vaccinators the patient authorised create and read the patient's vaccination record.

One rule of the policy seam (``platform.policy.add_rule``), so reads, searches and their totals, chains, includes,
history, batch entries and the operations' own reads get the same answer; every fact is read in SQL
(``access_sql.py``), so a search filters in one statement and a total never counts what the caller may not see.

Grants (to a professional, or a system client acting for one, who is a **vaccinator** — ``access_caller.py`` —
and whose right to practise is active), each *notable* (its own AuthZ-Consent audit event):

- ``Immunization`` read, search, create, update: of a patient whose authorisation (CVE Consent) names them and is
  in force;
- ``Patient`` read, search: those patients (to find them by matricule and to forecast);
- ``Condition``, ``Observation`` read, search, create, update: those patients' health parameters filed in the CVE
  (``category`` ``urn:esante:cve:category|cve``), which the forecast reads;
- ``Consent`` read, search: the CVE authorisations that name them.

Patients and assistants read their CVE through the platform's patient-compartment rule (Immunization, Consent,
Condition and Observation are in the Patient compartment); the CVE adds no right for them.

Vetoes:

- nobody writes a CVE authorisation Consent through the API (the CVE's ``$cve-authorize`` / ``$cve-revoke`` do);
- a system client acting for a professional gets, of Immunizations and of the CVE's health parameters, only what
  that professional may reach (its scopes alone grant a client that acts as the establishment itself, e.g. the
  MSVAC import or a maternity recording the birth doses).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from esante.cve import access_sql as q
from esante.cve.access_caller import PRACTITIONER, VACCINATOR
from esante.cve.consent import CONSENT_SYSTEM, is_cve_consent
from esante.cve.consent import VACCINATOR as VACCINATOR_CODE
from esante.cve.record.profile import codings
from esante.security.pdp.decision import AccessRequest, Grant
from esante.security.pdp.restrictions import EVERYTHING, NOTHING, AllOf, Not, Restriction, SqlCondition, any_of
from esante.security.pdp.rules.professional import practising
from esante.security.policy import Caller

__all__ = ["CveAccessRule", "acting_vaccinator"]

HEALTH_PARAMETERS = frozenset({"Condition", "Observation"})
RECORD_TYPES = frozenset({"Immunization"}) | HEALTH_PARAMETERS


def acting_vaccinator(caller: Caller) -> str | None:
    """The Practitioner id of the vaccinator a caller speaks for (their token, or a system client acting for them),
    or None (not a professional, not in the directory, not a vaccinator, or not practising)."""
    acting = caller.kind == "professional" or (
        caller.kind == "system" and bool(caller.attributes.get("national_provider_identifier"))
    )
    if not acting or not practising(caller) or caller.attributes.get(VACCINATOR) is not True:
        return None
    practitioner = caller.attributes.get(PRACTITIONER)
    return practitioner if isinstance(practitioner, str) and practitioner else None


def _acts_for_professional(caller: Caller) -> bool:
    return caller.kind == "system" and bool(caller.attributes.get("national_provider_identifier"))


def _condition(name: str, sql: q.Sql, check: Callable[[dict[str, Any]], bool] | None = None) -> SqlCondition:
    return SqlCondition(name, sql[0], sql[1], check=check)


def _filed_in_cve(resource: dict[str, Any]) -> bool:
    return any(
        c.get("system") == q.CATEGORY_SYSTEM and c.get("code") == q.CATEGORY_CODE
        for concept in resource.get("category", []) or []
        for c in codings(concept)
    )


def _names(practitioner: str) -> Callable[[dict[str, Any]], bool]:
    wanted = f"Practitioner/{practitioner}"

    def check(consent: dict[str, Any]) -> bool:
        provision = consent.get("provision") if isinstance(consent.get("provision"), dict) else {}
        assert isinstance(provision, dict)
        actors = [a.get("reference") for a in provision.get("actor", []) or [] if isinstance(a, dict)]
        named = any(isinstance(r, dict) and r.get("reference") == wanted for r in actors)
        return named and any(
            c.get("system") == CONSENT_SYSTEM and c.get("code") == VACCINATOR_CODE
            for concept in consent.get("category", []) or []
            for c in codings(concept)
        )

    return check


class CveAccessRule:
    name = "cve-access"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def _now_micros(self) -> int:
        return int(self.clock() * 1_000_000)

    # --- grants ----------------------------------------------------------------------------------------------------
    def grants(self, request: AccessRequest) -> Iterable[Grant]:
        practitioner = acting_vaccinator(request.caller)
        if practitioner is None:
            return
        yield from self._vaccinator(practitioner, request.resource_type, request.letter)

    def _vaccinator(self, practitioner: str, res_type: str, letter: str) -> Iterable[Grant]:
        now = self._now_micros()
        if res_type == "Immunization" and letter in "rscu":
            sql = q.of_authorising_patient(practitioner, now)
            yield Grant("cve-consent:vaccinator", _condition("patient's authorised vaccinator", sql), notable=True)
        elif res_type == "Patient" and letter in "rs":
            sql = q.authorising_patient(practitioner, now)
            yield Grant(
                "cve-consent:vaccinator", _condition("patient who authorised this vaccinator", sql), notable=True
            )
        elif res_type in HEALTH_PARAMETERS and letter in "rscu":
            patient = _condition("patient's authorised vaccinator", q.of_authorising_patient(practitioner, now))
            filed = _condition("health parameter of the CVE", q.cve_category(), _filed_in_cve)
            yield Grant("cve-consent:vaccinator", AllOf((patient, filed)), notable=True)
        elif res_type == "Consent" and letter in "rs":
            own = _condition("own CVE authorisations", q.own_authorisation(practitioner), _names(practitioner))
            yield Grant("cve-own-authorisations", own)

    # --- vetoes ----------------------------------------------------------------------------------------------------
    def vetoes(self, request: AccessRequest) -> Iterable[Restriction]:
        caller, res_type, letter = request.caller, request.resource_type, request.letter
        if res_type == "Consent" and letter in "cud":
            yield _condition("CVE authorisation", q.cve_consent(), is_cve_consent)
        if _acts_for_professional(caller) and res_type in RECORD_TYPES:
            yield from self._beyond_professional(caller, res_type, letter)

    def _beyond_professional(self, caller: Caller, res_type: str, letter: str) -> Iterable[Restriction]:
        """For a system client acting for a professional: the CVE's rows that professional may not reach."""
        practitioner = acting_vaccinator(caller)
        allowed = (
            any_of(g.restriction for g in self._vaccinator(practitioner, res_type, letter))
            if practitioner is not None
            else NOTHING
        )
        if res_type == "Immunization":
            if allowed is NOTHING:
                yield EVERYTHING
            elif allowed is not EVERYTHING:
                yield Not(allowed)
            return
        governed = _condition("health parameter of the CVE", q.cve_category(), _filed_in_cve)
        if allowed is NOTHING:
            yield governed
        elif allowed is not EVERYTHING:
            yield AllOf((governed, Not(allowed)))
