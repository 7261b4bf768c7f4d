"""Whether an issued (validly signed, unexpired) access token is still active.

A signature only proves the token was issued; it stays usable until one of these happens, checked here for
introspection (ITI-102) and usable by the resource server's bearer check:

- it was revoked (``oauth_revoked_token``: the revocation endpoint, or a reused code / refresh token);
- its account (``acct``) is no longer active, or the token was issued before ``account.tokens_valid_after``
  (password reset, suspension);
- its client is not registered (except ``esante-cli``, the operator's own tokens), suspended, or the token was
  issued before ``oauth_client.tokens_valid_after``;
- it speaks for a DSP assistant whose delegation for that patient was revoked;
- it speaks for a professional (their own token, or a system client acting for them) who fails the standing checks
  (``security/standing.py``: the HPD's right to practise suspended or withdrawn, or the token issued before that).

The same rules as the resource server's bearer gate (``security/resource_server.py``), so introspection and
``/fhir`` agree on which tokens are live.
"""

from __future__ import annotations

from typing import Protocol

from esante.security.accounts.model import Account, AccountStatus
from esante.security.oauth.client_store import ClientStore
from esante.security.oauth.grant_store import GrantStore
from esante.security.standing import ProfessionalRef, StandingRefusal, professional_of_token
from esante.security.tokens import CLI_CLIENT_ID, TokenClaims


class AccountLookup(Protocol):
    async def get(self, account_id: str) -> Account | None: ...

    async def delegations(self, account_id: str) -> list[str]: ...

    async def standing_refusal(
        self, who: ProfessionalRef | None, issued_at: int | None = None
    ) -> StandingRefusal | None: ...


async def inactive_reason(
    claims: TokenClaims, grants: GrantStore, clients: ClientStore, accounts: AccountLookup
) -> str | None:
    """None when the token is active; else why not: ``revoked``, ``account_inactive``, ``account_reset``,
    ``client_unknown``, ``client_suspended``, ``client_reset``, ``delegation_revoked``, or a standing check's code
    (``right_to_practise_withdrawn`` ...)."""
    if await grants.is_revoked(claims.jwt_id):
        return "revoked"
    client = await clients.get(claims.client_id)
    if client is None:
        if claims.client_id != CLI_CLIENT_ID:
            return "client_unknown"
    else:
        if not client.active:
            return "client_suspended"
        if claims.issued_at < client.tokens_valid_after:
            return "client_reset"
    account_id = claims.claims.get("acct")
    if isinstance(account_id, str) and account_id:
        account = await accounts.get(account_id)
        if account is None or account.status is not AccountStatus.ACTIVE:
            return "account_inactive"
        if claims.issued_at < account.tokens_valid_after:
            return "account_reset"
        person = claims.iua.person_id if claims.iua else None
        if claims.role == "assistant" and person and person not in await accounts.delegations(account_id):
            return "delegation_revoked"
    refused = await accounts.standing_refusal(professional_of_token(claims), claims.issued_at)
    return refused.code if refused is not None else None
