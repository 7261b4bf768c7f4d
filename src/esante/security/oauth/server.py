"""authlib's authorization server on Starlette, with the eSanté grants.

**Sync/async bridge.** authlib's server is synchronous: it calls ``query_client``, ``query_authorization_code``,
``validate_jti`` ... in the middle of its validation and expects answers. The database layer is async. Each
authlib call therefore runs in a worker thread (``starlette.concurrency.run_in_threadpool``) and every database
access it needs goes back to the event loop with ``anyio.from_thread.run`` (:class:`Bridge`). Preloading what a
request might need was the alternative, but the checks are interleaved with writes that must happen exactly at
their step (marking a code used, recording an assertion's ``jti``), and authlib's order of checks (client, then
code, then PKCE) is the security contract we want to keep. A request holds one worker thread; the event loop stays
free while authlib waits on the database.

The route handler reads the Starlette request first (body and form are async) and hands a plain
:class:`HttpInput` to the thread. The URI given to authlib is the public one (``issuer`` + path), so authlib's
transport check (https, or http on loopback) looks at what clients see.

**Grants**: authorization code with PKCE (S256 only; public clients authenticate with ``none``, confidential ones
with ``private_key_jwt``), client credentials (``private_key_jwt`` only) and refresh token with rotation and reuse
detection. **Client authentication** ``private_key_jwt`` (RFC 7523, SMART Backend Services): see
:class:`PrivateKeyJwt`. **Endpoints**: introspection (RFC 7662, ``private_key_jwt`` callers) and revocation
(RFC 7009). ``invalid_client`` is always answered 401 with ``WWW-Authenticate``.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import orjson
from authlib.oauth2 import AuthorizationServer, OAuth2Error
from authlib.oauth2.rfc6749 import (
    InsecureTransportError,
    InvalidClientError,
    InvalidScopeError,
    OAuth2Request,
)
from starlette.responses import Response

from esante.config import Settings
from esante.security.accounts.model import Account, AccountStatus
from esante.security.keys import KeyRing
from esante.security.oauth import grants_policy as policy
from esante.security.oauth.activity import AccountLookup, inactive_reason
from esante.security.oauth.client_auth import PrivateKeyJwt
from esante.security.oauth.client_store import ClientStore
from esante.security.oauth.clients import OAuthClient
from esante.security.oauth.endpoints import InspectedToken, Introspection, Revocation
from esante.security.oauth.grant_store import GrantStore, RefreshRecord
from esante.security.oauth.grants import AuthorizeChecks, ClientCredentials, CodeGrant, PkceS256, Refresh
from esante.security.oauth.integration import (
    INSECURE_TRANSPORT,
    AuthlibClient,
    AuthorizationPageError,
    AuthorizationRedirect,
    Bridge,
    HttpInput,
    StarletteOAuth2Request,
    TokenTrace,
    ValidatedAuthorization,
)
from esante.security.oauth.metadata import Endpoints
from esante.security.standing import StandingRefusal, professional_of_account
from esante.security.tokens import TokenError, mint, verify

_JSON_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache"}

# --- the server ----------------------------------------------------------------------------------------------------


def _payload_of(token: str) -> dict[str, Any]:
    """The claims of a token we just minted (no verification needed)."""
    body = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return claims


class EsanteAuthorizationServer(AuthorizationServer):
    """authlib's AuthorizationServer bound to the platform's stores, keys and settings (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        keyring: KeyRing,
        clients: ClientStore,
        grants: GrantStore,
        accounts: AccountLookup,
        clock: Callable[[], float] = time.time,
        bridge: Bridge | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.keyring = keyring
        self.clients = clients
        self.grants = grants
        self.accounts = accounts
        self.clock = clock
        self.bridge = bridge or Bridge()
        self.urls = Endpoints.of(settings)
        self.register_client_auth_method("private_key_jwt", PrivateKeyJwt(self))
        self.register_grant(CodeGrant, [AuthorizeChecks(settings.effective_audience), PkceS256()])
        self.register_grant(ClientCredentials)
        self.register_grant(Refresh)
        self.register_endpoint(Introspection)
        self.register_endpoint(Revocation)

    def now(self) -> int:
        return int(self.clock())

    # --- authlib's framework hooks -------------------------------------------------------------------------------

    def query_client(self, client_id: str) -> AuthlibClient | None:
        if not isinstance(client_id, str) or not client_id or len(client_id) > 128:
            return None
        client = self.bridge(self.clients.get, client_id)
        return AuthlibClient(client) if client is not None and client.active else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        return None  # :meth:`issue` stores what must be stored

    def create_oauth2_request(self, request: Any) -> StarletteOAuth2Request:
        if isinstance(request, StarletteOAuth2Request):
            return request
        return StarletteOAuth2Request(request)

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError("no JSON endpoints")

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def validate_requested_scope(self, scope: str | None) -> None:
        try:
            policy.parse_request_scope(scope)
        except policy.PolicyError as error:
            raise InvalidScopeError(error.description) from error

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        merged = dict(_JSON_HEADERS)
        merged.update(dict(headers or []))
        if isinstance(body, dict):
            content = orjson.dumps(body)
        else:
            content = (body or "").encode() if isinstance(body, str) else bytes(body or b"")
            if status in (301, 302, 303):
                merged.pop("Content-Type", None)
        return Response(content, status_code=status, headers=merged)

    def handle_error_response(self, request: Any, error: OAuth2Error) -> Response:
        trace: TokenTrace | None = getattr(request, "trace", None)
        if trace is not None:
            trace.error, trace.error_description = error.error, error.description or None
        if isinstance(error, InvalidClientError) and not error.redirect_uri:
            error.status_code = 401
            status, body, headers = error(self.get_error_uri(request, error))
            headers = [(k, v) for k, v in headers if k.lower() != "www-authenticate"]
            realm = self.urls.issuer.replace('"', "")
            description = (error.description or "").replace('"', "'")
            headers.append(
                (
                    "WWW-Authenticate",
                    f'private_key_jwt realm="{realm}", error="invalid_client", error_description="{description}"',
                )
            )
            return self.handle_response(status, body, headers)
        return self.handle_response(*error(self.get_error_uri(request, error)))

    # --- the authorization endpoint (driven by security/oauth/authorize.py) -----------------------------------------

    def _consent_grant(self, http: HttpInput, user: policy.Authorization | None) -> tuple[StarletteOAuth2Request, Any]:
        try:
            request = StarletteOAuth2Request(http)
        except InsecureTransportError as error:
            raise AuthorizationPageError("insecure_transport", INSECURE_TRANSPORT) from error
        try:
            return request, self.get_consent_grant(request, end_user=user)
        except OAuth2Error as error:
            if error.redirect_uri:  # the client and its redirect URI are known: tell the client
                raise AuthorizationRedirect(self.handle_error_response(request, error)) from error
            raise AuthorizationPageError(error.error or "invalid_request", error.description or "") from error

    def validate_authorization(self, http: HttpInput) -> ValidatedAuthorization:
        """Check an authorization request (client, redirect URI, response type, scope, PKCE, aud, purpose).

        Errors found before the redirect URI is known to be the client's raise :class:`AuthorizationPageError`
        (shown to the person, never redirected); later ones raise :class:`AuthorizationRedirect`.
        """
        request, _grant = self._consent_grant(http, None)
        return ValidatedAuthorization(request.client.model, dict(request.payload.data), request.scope)

    def complete_authorization(self, http: HttpInput, authorization: policy.Authorization | None) -> Response:
        """Re-check the request, then redirect to the client with a code (or ``access_denied`` when refused)."""
        request, grant = self._consent_grant(http, authorization)
        response: Response = self.create_authorization_response(request=request, grant_user=authorization, grant=grant)
        return response

    def refuse_authorization(self, http: HttpInput, error: str, description: str) -> Response:
        """Redirect an already validated authorization request back to its client with ``error``."""
        request, _grant = self._consent_grant(http, None)
        failure = OAuth2Error(
            description=description,
            error=error,
            redirect_uri=request.payload.redirect_uri,
            state=request.payload.state,
        )
        return self.handle_error_response(request, failure)

    # --- ours -----------------------------------------------------------------------------------------------------

    def assertion_audiences(self, request: OAuth2Request) -> list[str]:
        """The token endpoint URL, and the URL of the endpoint called (introspection, revocation)."""
        audiences = [self.urls.token]
        if request.uri in (self.urls.introspect, self.urls.revoke):
            audiences.append(request.uri)
        return audiences

    def authorization_of(
        self,
        account_id: str,
        granted_at: int,
        subject_role: str,
        person_id: str | None,
        scope: str,
        purpose_of_use: str | None,
    ) -> policy.Authorization | None:
        """The authorization a code or refresh token stands for, if its account is still active and unchanged."""
        found = self.authorization_or_refusal(account_id, granted_at, subject_role, person_id, scope, purpose_of_use)
        return found if isinstance(found, policy.Authorization) else None

    def authorization_or_refusal(
        self,
        account_id: str,
        granted_at: int,
        subject_role: str,
        person_id: str | None,
        scope: str,
        purpose_of_use: str | None,
    ) -> policy.Authorization | str:
        """:meth:`authorization_of`, or why not (a message for the client's ``error_description``)."""
        account: Account | None = self.bridge(self.accounts.get, account_id)
        if account is None or account.status is not AccountStatus.ACTIVE or granted_at < account.tokens_valid_after:
            return "the account is no longer active"
        if subject_role == "assistant" and person_id not in self.bridge(self.accounts.delegations, account_id):
            return "the delegation to act for this patient was revoked"  # the patient withdrew it
        refused = self.standing_refusal(account, granted_at)
        if refused is not None:
            return refused.message
        return policy.Authorization(account, subject_role, person_id, scope, purpose_of_use)

    def standing_refusal(self, account: Account | None, granted_at: int | None) -> StandingRefusal | None:
        """Why the professional behind ``account`` may not act now (the HPD's right to practise), or None."""
        who = professional_of_account(account)
        if who is None:
            return None
        refused: StandingRefusal | None = self.bridge(self.accounts.standing_refusal, who, granted_at)
        return refused

    def issue(
        self,
        request: StarletteOAuth2Request,
        scope: str,
        grant: policy.Authorization | None,
        *,
        purpose: str | None = None,
        family: str | None = None,
        code_hash: str | None = None,
        family_expires: int | None = None,
        acting_for: str | None = None,
    ) -> dict[str, Any]:
        """Mint the access token (and, for a person whose authorization has offline_access or online_access and
        whose client may refresh, a refresh token of ``family``); record what must be recorded; fill the trace.

        ``acting_for``: the eHealthID of the professional a system client acts for (IUA
        ``national_provider_identifier``)."""
        client: OAuthClient = request.client.model
        now = self.now()
        ttl = self.settings.token_ttl
        if grant is not None:
            subject, iua, extra = policy.person_claims(grant)
        else:
            subject, iua, extra = policy.system_claims(client, purpose, acting_for)
        access = mint(
            self.keyring,
            issuer=self.settings.effective_issuer,
            audience=self.settings.effective_audience,
            subject=subject,
            client_id=client.client_id,
            scope=scope,
            ttl=ttl,
            iua=iua,
            now=now,
            extra_claims=extra,
        )
        jti = str(_payload_of(access)["jti"])
        token: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": ttl, "scope": scope}
        if grant is not None:
            if grant.person_id:
                token["patient"] = grant.person_id
            granted = policy.parse_request_scope(grant.scope)
            if family and (granted.offline_access or granted.online_access) and client.allows_grant("refresh_token"):
                refresh = secrets.token_urlsafe(48)
                self.bridge(
                    self.grants.save_refresh,
                    refresh,
                    family=family,
                    client_id=client.client_id,
                    account_id=grant.account.id,
                    scope=grant.scope,
                    person_id=grant.person_id,
                    subject_role=grant.subject_role,
                    purpose_of_use=grant.purpose_of_use,
                    access_jti=jti,
                    expires_at=family_expires or now + self.settings.refresh_token_ttl,
                    now=now,
                )
                token["refresh_token"] = refresh
            if code_hash:
                self.bridge(self.grants.attach_code_token, code_hash, jti)
        trace = request.trace
        trace.client_id, trace.authorization, trace.system = client.client_id, grant, grant is None
        trace.jti, trace.scope, trace.expires_in = jti, scope, ttl
        return token

    def inspect(self, token: str, hint: str | None, *, check_activity: bool) -> InspectedToken | None:
        """Find ``token`` (an access JWT or a refresh token); None when unknown, expired or badly signed."""
        if not isinstance(token, str) or not token or len(token) > 16_000:
            return None
        looks_like_jwt = token.count(".") == 2
        if hint == "refresh_token" or not looks_like_jwt:
            found = self._inspect_refresh(token, check_activity)
            if found is not None or not looks_like_jwt:
                return found
        return self._inspect_access(token, check_activity)

    def _inspect_access(self, token: str, check_activity: bool) -> InspectedToken | None:
        try:
            claims = verify(
                self.keyring, token, audience=self.settings.effective_audience, issuer=self.settings.effective_issuer
            )
        except TokenError:
            return None
        inspected = InspectedToken(
            "access_token",
            claims.client_id,
            payload={**claims.claims, "token_type": "Bearer"},
            jti=claims.jwt_id,
            expires_at=claims.expires_at,
        )
        if check_activity and self.bridge(inactive_reason, claims, self.grants, self.clients, self.accounts):
            inspected.active = False
        return inspected

    def _inspect_refresh(self, token: str, check_activity: bool) -> InspectedToken | None:
        record: RefreshRecord | None = self.bridge(self.grants.find_refresh, token)
        if record is None:
            return None
        now = self.now()
        active = record.used_at is None and not record.revoked and now < record.expires_at
        if active and check_activity:
            client = self.bridge(self.clients.get, record.client_id)
            active = (
                client is not None
                and client.active
                and record.created_at >= client.tokens_valid_after
                and self.authorization_of(
                    record.account_id,
                    record.created_at,
                    record.subject_role,
                    record.person_id,
                    record.scope,
                    record.purpose_of_use,
                )
                is not None
            )
        payload = {
            "token_type": "refresh_token",
            "client_id": record.client_id,
            "scope": record.scope,
            "sub": record.account_id,
            "iss": self.settings.effective_issuer,
            "exp": record.expires_at,
            "iat": record.created_at,
        }
        if record.person_id:
            payload["patient"] = record.person_id
        return InspectedToken(
            "refresh_token", record.client_id, payload, active, expires_at=record.expires_at, family=record.family
        )
