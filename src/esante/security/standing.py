"""A professional's standing: whether a health professional may act *now*, beyond the state of their account.

An account can be active while the person behind it may not practise (the HPD's right to practise suspended or
withdrawn by the Ministry of Health). Services say so through checks registered here; the security layer asks them
at every point where a professional gets or uses access:

| where | what is refused |
|---|---|
| login (``AccountService.authenticate``: the OAuth login page) and the consent step | signing in |
| the token endpoint (authorization code, refresh token) | new access and refresh tokens |
| ``client_credentials`` with ``national_provider_identifier`` | a system client acting for the professional |
| the operator's ``esante token --as professional:…`` | operator tokens |
| the bearer gate of ``/fhir`` (through ``ResourceServer.add_check``) and introspection | every token already issued |

A check gets the professional (eHealthID and/or Practitioner id) and, for an issued grant or token, when it was
issued (``issued_at``, epoch seconds): a service may refuse grants issued before an event even when the event is
over (tokens issued before a withdrawal stay dead after the restoration). Pure data and one small registry; no
service is imported here (the HPD registers its check with ``install_practise``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from esante.db.engine import Connection
from esante.security.accounts.model import Account, AccountKind
from esante.security.tokens import TokenClaims


@dataclass(frozen=True)
class ProfessionalRef:
    """Who a grant speaks for: the eHealthID and/or the Practitioner resource id (at least one)."""

    ehealth_id: str | None = None
    practitioner_id: str | None = None


@dataclass(frozen=True)
class StandingRefusal:
    """Why the professional may not act: a stable ``code`` (audit, tests) and a message for people."""

    code: str
    message: str


StandingCheck = Callable[[Connection, ProfessionalRef, "int | None"], Awaitable[StandingRefusal | None]]
"""``(conn, professional, issued_at) -> refusal or None``; ``issued_at`` is None for a new sign-in or grant."""


@dataclass
class Standing:
    """The checks services registered (none by default: every professional with an active account may act)."""

    checks: list[StandingCheck] = field(default_factory=list)

    def add(self, check: StandingCheck) -> None:
        if check not in self.checks:
            self.checks.append(check)

    async def refusal(
        self, conn: Connection, who: ProfessionalRef | None, issued_at: int | None = None
    ) -> StandingRefusal | None:
        """The first refusal of the registered checks, or None (also when ``who`` is None: not a professional)."""
        if who is None:
            return None
        for check in self.checks:
            refused = await check(conn, who, issued_at)
            if refused is not None:
                return refused
        return None


def professional_of_account(account: Account | None) -> ProfessionalRef | None:
    """The professional a professional account is (None for patients and staff)."""
    if account is None or account.kind is not AccountKind.PROFESSIONAL:
        return None
    if not account.ehealth_id and not account.practitioner_id:
        return None
    return ProfessionalRef(account.ehealth_id, account.practitioner_id)


def professional_of_token(claims: TokenClaims) -> ProfessionalRef | None:
    """The professional an access token speaks for: a professional's own token, or a system client's token acting
    for a named professional (IUA ``national_provider_identifier``). None for any other token."""
    role = claims.role
    ehealth_id = claims.iua.national_provider_identifier if claims.iua else None
    if role == "professional":
        fhir_user = claims.claims.get("fhirUser")
        practitioner = None
        if isinstance(fhir_user, str) and fhir_user.startswith("Practitioner/"):
            practitioner = fhir_user.removeprefix("Practitioner/") or None
        if ehealth_id or practitioner:
            return ProfessionalRef(ehealth_id, practitioner)
        return None
    if role == "system" and ehealth_id:
        return ProfessionalRef(ehealth_id, None)
    return None
