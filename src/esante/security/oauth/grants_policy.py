"""What a token request is granted and what its access token says. Pure: no I/O.

Granted scope = requested ∩ the client's registered scopes ∩ what the subject may ask:

- resource scopes intersect per context and type: ``patient/Observation.cruds`` requested from a client
  registered for ``patient/*.rs`` gives ``patient/Observation.rs``; a query (v2 granular scope) on either side is
  kept; results are written as v2 (``.rs``, ``.cruds``);
- other scopes (``openid``, ``fhirUser``, ``launch/patient``, ``offline_access`` ...) are granted when the client
  registered them;
- a person (authorization code) gets ``user/*`` scopes, and ``patient/*`` / ``launch/patient`` only when a patient
  is in context (a patient or a DSP assistant acting for one); never ``system/*``;
- a system client (client credentials) gets ``system/*`` scopes only.

An empty result is ``invalid_scope``. Purpose of use (IUA ``purpose_of_use``, HL7 v3 ActReason) defaults per
subject role; a request may ask another code among the ones its role allows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from esante.security.accounts.model import Account, AccountKind
from esante.security.oauth.clients import OAuthClient
from esante.security.scopes import INTERACTIONS, ResourceScope, ScopeSet, parse_scopes
from esante.security.tokens import PURPOSE_SYSTEM, ROLE_SYSTEM, Coding, IuaClaims

ROLE_DISPLAY = {
    "patient": "Patient",
    "assistant": "DSP assistant",
    "professional": "Health professional",
    "staff": "Agency staff",
    "system": "System",
}
DEFAULT_PURPOSE = {"patient": "PATRQT", "assistant": "PATRQT", "professional": "TREAT", "staff": "HOPERAT"}
ALLOWED_PURPOSES: dict[str, tuple[str, ...]] = {
    "patient": ("PATRQT",),
    "assistant": ("PATRQT", "FAMRQT", "PWATRNY"),
    "professional": ("TREAT", "ETREAT", "COC", "CLINTRL"),
    "staff": ("HOPERAT", "HSYSADMIN", "HRESCH", "HQUALIMP", "PUBHLTH"),
    "system": ("TREAT", "ETREAT", "COC", "HOPERAT", "PUBHLTH", "HRESCH"),
}
KNOWN_PURPOSES = frozenset(code for codes in ALLOWED_PURPOSES.values() for code in codes)


class PolicyError(ValueError):
    """A request the policy refuses: ``error`` is the OAuth error code (invalid_scope, invalid_request)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(frozen=True)
class Authorization:
    """What a person authorised a client to do (the authlib ``user`` of a code or refresh token)."""

    account: Account
    subject_role: str  # patient | assistant | professional | staff
    person_id: str | None  # the patient in context
    scope: str  # the authorization's scope (a refresh may narrow an access token's scope, never this)
    purpose_of_use: str | None

    def get_user_id(self) -> str:  # authlib calls it for logging
        return self.account.id


# --- scopes ---------------------------------------------------------------------------------------------------------


def _letters(interactions: Iterable[str]) -> str:
    chosen = set(interactions)
    return "".join(ch for ch in INTERACTIONS if ch in chosen)


def _intersect(requested: ResourceScope, registered: ResourceScope) -> str | None:
    if requested.context != registered.context:
        return None
    if registered.resource_type == "*":
        resource_type = requested.resource_type
    elif requested.resource_type in ("*", registered.resource_type):
        resource_type = registered.resource_type
    else:
        return None
    if requested.query and registered.query and requested.query != registered.query:
        return None
    query = requested.query or registered.query
    letters = _letters(requested.interactions & registered.interactions)
    if not letters:
        return None
    text = f"{requested.context}/{resource_type}.{letters}"
    if query:
        text += "?" + urlencode(query)
    return text


def intersect(requested: ScopeSet, registered: ScopeSet) -> list[str]:
    """``requested ∩ registered`` as scope strings, in the requested order (resource scopes per context and type,
    others by equality)."""
    out: dict[str, None] = {}
    for item in requested.raw:
        wanted = next((s for s in requested.resources if s.raw == item), None)
        if wanted is None:
            if item in registered.raw:
                out[item] = None
            continue
        for allowed in registered.resources:
            granted = _intersect(wanted, allowed)
            if granted is not None:
                out[granted] = None
    return _drop_covered(list(out))


def _drop_covered(scopes: list[str]) -> list[str]:
    """Drop resource scopes a broader granted scope already covers (``patient/*.rs`` makes ``patient/X.rs`` moot)."""
    parsed = parse_scopes(scopes)
    kept: list[str] = []
    for item in scopes:
        scope = next((s for s in parsed.resources if s.raw == item), None)
        if scope is not None and any(
            other.raw != item
            and not other.query
            and other.context == scope.context
            and other.resource_type == "*"
            and scope.resource_type != "*"
            and scope.interactions <= other.interactions
            for other in parsed.resources
        ):
            continue
        kept.append(item)
    return kept


def parse_request_scope(scope: str | None) -> ScopeSet:
    """The requested scope, parsed; a malformed one is ``invalid_scope``."""
    from esante.security.scopes import ScopeError

    try:
        return parse_scopes(scope or "")
    except ScopeError as error:
        raise PolicyError("invalid_scope", str(error)) from error


def person_scope(requested: str | None, client: OAuthClient, has_patient: bool) -> str:
    """The scope a person's authorization grants (see the module docstring)."""
    wanted = parse_request_scope(requested)
    kept: list[str] = []
    for item in intersect(wanted, parse_scopes(client.scopes)):
        context = item.partition("/")[0]
        if context == "system":
            continue
        if (context == "patient" or item == "launch/patient") and not has_patient:
            continue
        kept.append(item)
    if not any("/" in item and not item.startswith("launch/") for item in kept):
        raise PolicyError("invalid_scope", "none of the requested resource scopes can be granted")
    return " ".join(kept)


def system_scope(requested: str | None, client: OAuthClient) -> str:
    """The scope a system client's client_credentials request grants (all its system scopes if none is asked)."""
    registered = parse_scopes(client.scopes)
    wanted = parse_request_scope(requested) if requested else registered
    kept = [item for item in intersect(wanted, registered) if item.startswith("system/")]
    if not kept:
        raise PolicyError("invalid_scope", "none of the requested system scopes is registered for this client")
    return " ".join(kept)


def client_allowed_scope(requested: str | None, client: OAuthClient) -> str | None:
    """The authorization request's scope narrowed to the client's registration (None when nothing is left)."""
    try:
        kept = intersect(parse_request_scope(requested), parse_scopes(client.scopes))
    except PolicyError:
        return None
    kept = [item for item in kept if not item.startswith("system/")]
    return " ".join(kept) if any("/" in k and not k.startswith("launch/") for k in kept) else None


# --- roles and purpose ----------------------------------------------------------------------------------------------


def subject_role(account: Account, person_id: str | None) -> str:
    """The IUA subject role: a patient acting for another patient is their assistant."""
    if account.kind is AccountKind.PATIENT:
        return "patient" if person_id in (None, account.patient_id) else "assistant"
    return account.kind.value


def choose_purpose(role: str, requested: str | None) -> str | None:
    """The purpose of use: the requested code if the role may ask it, else the role's default."""
    if not requested:
        return DEFAULT_PURPOSE.get(role)
    if requested not in ALLOWED_PURPOSES.get(role, ()):
        allowed = ", ".join(ALLOWED_PURPOSES.get(role, ())) or "none"
        raise PolicyError("invalid_request", f"purpose_of_use {requested} is not allowed for a {role} ({allowed})")
    return requested


def patient_choices(account: Account, delegations: Iterable[str]) -> list[str]:
    """The patients a person may act for: a patient themself, then the patients they assist."""
    if account.kind is not AccountKind.PATIENT:
        return []
    own = [account.patient_id] if account.patient_id else []
    return own + [p for p in delegations if p not in own]


# --- claims -----------------------------------------------------------------------------------------------------------


def _purposes(code: str | None) -> tuple[Coding, ...]:
    return (Coding(PURPOSE_SYSTEM, code),) if code else ()


def person_claims(grant: Authorization) -> tuple[str, IuaClaims, dict[str, Any]]:
    """``sub``, the IUA extension and the platform claims (acct, fhirUser, roles) of a person's access token."""
    account = grant.account
    iua = IuaClaims(
        subject_name=account.display_name or account.username,
        subject_role=Coding(ROLE_SYSTEM, grant.subject_role, ROLE_DISPLAY.get(grant.subject_role)),
        purpose_of_use=_purposes(grant.purpose_of_use),
        national_provider_identifier=account.ehealth_id if account.kind is AccountKind.PROFESSIONAL else None,
        person_id=grant.person_id,
    )
    extra: dict[str, Any] = {"acct": account.id}
    if account.fhir_user:
        extra["fhirUser"] = account.fhir_user
    if account.roles:
        extra["roles"] = [role.value for role in account.roles]
    return account.id, iua, extra


def system_claims(
    client: OAuthClient, purpose_of_use: str | None, acting_for: str | None = None
) -> tuple[str, IuaClaims, dict[str, Any]]:
    """A system client's own token: ``sub`` = client_id, subject role ``system``, its organization; with
    ``acting_for``, the eHealthID of the professional it acts for (IUA ``national_provider_identifier``)."""
    iua = IuaClaims(
        subject_name=client.name,
        subject_organization=client.subject_organization,
        subject_role=Coding(ROLE_SYSTEM, "system", ROLE_DISPLAY["system"]),
        purpose_of_use=_purposes(purpose_of_use),
        national_provider_identifier=acting_for,
    )
    return client.client_id, iua, {}


ACTING_FOR_PARAMETER = "national_provider_identifier"
"""client_credentials parameter (named after the IUA claim it fills): the eHealthID of the professional the
establishment's software acts for. The token is then refused, on every request, once that professional may no
longer practise."""


def acting_for(values: list[str]) -> str | None:
    """The professional a client_credentials request acts for (normalised eHealthID), or None."""
    from esante.identifiers.ehealth_id import EHealthIdError, parse_ehealth_id

    if not values:
        return None
    if len(values) > 1:
        raise PolicyError("invalid_request", f"Multiple '{ACTING_FOR_PARAMETER}' in request.")
    try:
        return parse_ehealth_id(values[0])
    except EHealthIdError as error:
        raise PolicyError("invalid_request", f"{ACTING_FOR_PARAMETER}: {error}") from error
