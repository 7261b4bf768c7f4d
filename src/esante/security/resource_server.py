"""The resource server's gate (IHE IUA ITI-72, RFC 6750): every /fhir request carries a valid bearer token.

:meth:`ResourceServer.authenticate` turns the ``Authorization`` header into the policy seam's :class:`Caller`, or
refuses with 401, a ``WWW-Authenticate: Bearer`` challenge and an OperationOutcome. A token must:

1. verify (signature by a published key of the server's ring, ``at+jwt``, issuer, audience, time window:
   ``tokens.verify``);
2. still be live, checked in the database on every request (one statement): not revoked (``oauth_revoked_token``);
   its account, if any (``acct``), active and not reset since the token was issued (``tokens_valid_after``); its
   client registered and active (tokens minted by the operator's CLI, client ``esante-cli``, need no client row);
   for an assistant, the delegation still active;
3. pass the checks that services register (``add_check``), e.g. the provider directory refusing a professional
   whose right to practise was withdrawn.

No cache: a suspension, a revocation or a withdrawal takes effect on the very next request.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping

import structlog

from esante.config import Settings
from esante.db.engine import Connection, Database
from esante.fhir.errors import FhirError, Issue
from esante.security.keys import KeyRing
from esante.security.policy import Caller
from esante.security.tokens import CLI_CLIENT_ID, DEFAULT_LEEWAY, Reason, TokenClaims, TokenError, verify

TokenCheck = Callable[[TokenClaims, Caller, Connection], Awaitable[None]]
"""A service's extra check; raises :func:`unauthorized` (or a FhirError) to refuse the token. A check may record
what it established in ``caller.attributes`` (a fresh dict per request) for the access rules, which do no I/O
(the HPD records ``right_to_practise``)."""

REALM = "esante"
_CACHE_SIZE = 10_000  # verified tokens kept (about 2 KB each)
log = structlog.get_logger("esante.auth")

_LIVE_SQL = (
    "SELECT"
    " (SELECT COUNT(*) FROM oauth_revoked_token WHERE jti = ?),"
    " (SELECT status FROM account WHERE id = ?),"
    " (SELECT tokens_valid_after FROM account WHERE id = ?),"
    " (SELECT status FROM oauth_client WHERE client_id = ?),"
    " (SELECT tokens_valid_after FROM oauth_client WHERE client_id = ?),"
    " (SELECT COUNT(*) FROM account_delegation WHERE account_id = ? AND patient_id = ? AND revoked_at IS NULL)"
)


def unauthorized(
    description: str,
    error_code: str | None = "invalid_token",
    issue_code: str = "login",
    details_code: str | None = None,
) -> FhirError:
    """401 with an RFC 6750 challenge (``error_code`` None: no token was presented, so no error attribute);
    ``details_code``: a stable code for the reason (OperationOutcome ``issue.details``)."""
    challenge = f'Bearer realm="{REALM}"'
    if error_code:
        safe = description.replace('"', "'")
        challenge += f', error="{error_code}", error_description="{safe}"'
    err = FhirError(401, [Issue(issue_code, description, details_code=details_code)])
    err.headers["WWW-Authenticate"] = challenge
    return err


class ResourceServer:
    """Authenticates FHIR requests."""

    def __init__(self, settings: Settings, keyring: KeyRing, database: Database) -> None:
        self.settings = settings
        self.keyring = keyring
        self.database = database
        self.checks: list[TokenCheck] = []
        self._cache: OrderedDict[str, TokenClaims] = OrderedDict()

    def add_check(self, check: TokenCheck) -> None:
        """Where a service adds a condition every token must meet (run after the built-in checks)."""
        self.checks.append(check)

    async def authenticate(self, headers: Mapping[str, str], conn: Connection | None = None) -> Caller:
        """The caller of a request with ``headers`` (lower-case names), or a 401 FhirError.

        ``conn``: a connection the request already holds (saves taking one from the pool for the live check).
        """
        header = headers.get("authorization")
        if not header:
            raise unauthorized("an access token is required (Authorization: Bearer <token>)", None)
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            raise unauthorized("the Authorization header must be 'Bearer <access token>'", "invalid_request")
        try:
            claims = self._verified(token)
        except TokenError as error:
            log.info("token.refused", reason=error.reason.value)
            code = "expired" if error.reason is Reason.EXPIRED else "login"
            raise unauthorized(f"invalid access token: {error.message}", issue_code=code) from error
        caller = claims.to_caller()
        try:
            if conn is not None:
                await self._checks(conn, claims, caller)
            else:
                async with self.database.read() as own:
                    await self._checks(own, claims, caller)
        except FhirError:
            log.info("token.refused", reason="not_live", client_id=claims.client_id, jti=claims.jwt_id)
            raise
        return caller

    async def _checks(self, conn: Connection, claims: TokenClaims, caller: Caller) -> None:
        await self._check_live(conn, claims, caller)
        for check in self.checks:
            await check(claims, caller, conn)

    def _verified(self, token: str) -> TokenClaims:
        """The token's verified claims; a token verified before is only re-checked against the clock.

        A signature, issuer and audience check gives the same answer for the same token for as long as the token
        can be valid (its key stays published at least until every token it signed has expired), so the verified
        claims are kept (bounded, least recently used out) and the time window is checked on every use. Verifying
        an ES256 signature is about half the gate's cost.
        """
        now = time.time()
        cached = self._cache.get(token)
        if cached is not None:
            self._cache.move_to_end(token)
            if now >= cached.expires_at + DEFAULT_LEEWAY:
                del self._cache[token]
                raise TokenError(Reason.EXPIRED, "the token has expired")
            return cached
        claims = verify(
            self.keyring,
            token,
            audience=self.settings.effective_audience,
            issuer=self.settings.effective_issuer,
            now=now,
        )
        self._cache[token] = claims
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return claims

    async def _check_live(self, conn: Connection, claims: TokenClaims, caller: Caller) -> None:
        account = caller.attributes.get("account_id")
        person = caller.attributes.get("person_id")
        row = await conn.fetchrow(
            _LIVE_SQL,
            (claims.jwt_id, account, account, claims.client_id, claims.client_id, account, person),
        )
        assert row is not None
        revoked, account_status, account_after, client_status, client_after, delegations = row
        if revoked:
            raise unauthorized("the access token was revoked")
        if account is not None:
            if account_status is None:
                raise unauthorized("the access token's account does not exist")
            if account_status != "active":
                raise unauthorized(f"the account is {account_status}")
            if claims.issued_at < int(account_after or 0):
                raise unauthorized("the access token was issued before the account's credentials or status changed")
        if client_status is None:
            if claims.client_id != CLI_CLIENT_ID:
                raise unauthorized("the access token's client is not registered")
        elif client_status != "active":
            raise unauthorized(f"the client is {client_status}")
        elif claims.issued_at < int(client_after or 0):
            raise unauthorized("the access token was issued before the client was suspended")
        if caller.kind == "assistant" and account is not None and not delegations:
            raise unauthorized("the delegation to act for this patient was revoked")
