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
import functools
import json
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio.from_thread
import orjson
from authlib.oauth2 import AuthorizationServer, OAuth2Error
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Payload,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, ClientCredentialsGrant, RefreshTokenGrant
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523.client import ASSERTION_TYPE
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7636.challenge import CODE_CHALLENGE_PATTERN
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.responses import Response

from esante.config import Settings
from esante.security.accounts.model import Account, AccountStatus
from esante.security.keys import KeyRing
from esante.security.oauth import grants_policy as policy
from esante.security.oauth.activity import AccountLookup, inactive_reason
from esante.security.oauth.client_store import ClientStore
from esante.security.oauth.clients import ASSERTION_ALGORITHMS, AUTHORIZATION_CODE, PRIVATE_KEY_JWT, OAuthClient
from esante.security.oauth.grant_store import CodeOutcome, CodeRecord, GrantStore, RefreshRecord
from esante.security.oauth.metadata import Endpoints
from esante.security.tokens import TokenError, mint, verify

T = TypeVar("T")
MAX_ASSERTION_LIFETIME = 300  # SMART Backend Services: exp no more than five minutes ahead
ASSERTION_LEEWAY = 30  # clock skew tolerated on the assertion's exp, nbf and iat
_JSON_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache"}


# --- the request handed to the worker thread ---------------------------------------------------------------------


@dataclass(frozen=True)
class HttpInput:
    """What the route handler read from Starlette (plain data: usable from any thread)."""

    method: str
    uri: str  # the public URL (issuer + path)
    headers: dict[str, str]
    params: list[tuple[str, str]]  # the form body of a POST, the query of a GET
    client_address: str | None = None


@dataclass
class TokenTrace:
    """What a token request did, for its audit event (filled in by the grants)."""

    client_id: str | None = None
    authorization: policy.Authorization | None = None
    system: bool = False
    jti: str | None = None
    scope: str | None = None
    expires_in: int | None = None
    error: str | None = None
    error_description: str | None = None


@dataclass(frozen=True)
class ValidatedAuthorization:
    """A valid authorization request: its client, parameters (first values) and scope narrowed to the client."""

    client: OAuthClient
    params: dict[str, str]
    scope: str


class AuthorizationRedirect(Exception):
    """The authorization request is answered by redirecting to the client (``response``)."""

    def __init__(self, response: Response) -> None:
        super().__init__("redirect to the client")
        self.response = response


class AuthorizationPageError(Exception):
    """The authorization request cannot be sent back to a client: show an error page."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


class _Payload(OAuth2Payload):
    def __init__(self, params: list[tuple[str, str]]) -> None:
        self._data: dict[str, str] = {}
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for name, value in params:
            self._data.setdefault(name, value)
            self._datalist[name].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class StarletteOAuth2Request(OAuth2Request):
    """authlib's request over an :class:`HttpInput` (parameters from the body of a POST, the query of a GET)."""

    def __init__(self, http: HttpInput) -> None:
        super().__init__(http.method, http.uri, headers=http.headers)
        self.http = http
        self.payload = _Payload(http.params)
        self.trace = TokenTrace()

    @property
    def args(self) -> dict[str, str]:
        return self.payload.data if self.method == "GET" else {}

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data if self.method == "POST" else {}


class Bridge:
    """Runs the async database calls from authlib's worker thread on the event loop (``anyio.from_thread``)."""

    def __call__(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any, **kwargs: Any) -> T:
        return anyio.from_thread.run(functools.partial(fn, *args, **kwargs))


# --- clients -------------------------------------------------------------------------------------------------------


class AuthlibClient(ClientMixin):
    """authlib's view of a registered client."""

    def __init__(self, model: OAuthClient) -> None:
        self.model = model
        self.client_id = model.client_id

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # redirect_uri is required in every authorization request (SMART)

    def get_allowed_scope(self, scope: str | None) -> str | None:
        return policy.client_allowed_scope(scope, self.model)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.model.redirect_uris  # exact string comparison (RFC 9700 §4.1.3)

    def check_client_secret(self, client_secret: str) -> bool:
        return False  # no shared secrets on this platform

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.model.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and self.model.allows_grant(AUTHORIZATION_CODE)

    def check_grant_type(self, grant_type: str) -> bool:
        return self.model.allows_grant(grant_type)


# --- private_key_jwt ------------------------------------------------------------------------------------------------


def _invalid_client(description: str) -> InvalidClientError:
    return InvalidClientError(description=description, status_code=401)


def _unverified(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        head, body, _sig = assertion.split(".")
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except ValueError as error:
        raise _invalid_client("client_assertion is not a compact JWT") from error
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise _invalid_client("client_assertion is not a compact JWT")
    return header, claims


class PrivateKeyJwt:
    """``private_key_jwt`` client authentication (RFC 7523 §2.2, SMART Backend Services), checked in this order:

    assertion type; header ``alg`` one of RS384 ES384 RS256 ES256 (``none`` and HS* refused before any key is
    touched); ``kid`` present; ``iss`` = ``sub`` = a registered, active client using private_key_jwt; the ``kid``
    is one of that client's registered keys; the signature; ``aud`` = the token endpoint URL (or, for
    introspection and revocation, that endpoint's URL); ``exp`` in the future and at most five minutes ahead;
    ``nbf``/``iat`` not in the future; a ``jti`` never seen before for this client (recorded until ``exp``).
    Every refusal is ``invalid_client`` (401).
    """

    def __init__(self, server: EsanteAuthorizationServer) -> None:
        self.server = server

    def __call__(self, query_client: Callable[[str], AuthlibClient | None], request: OAuth2Request) -> Any:
        form = request.form
        assertion_type, assertion = form.get("client_assertion_type"), form.get("client_assertion")
        if not assertion_type and not assertion:
            return None  # not this method: the next one (none) may apply
        if assertion_type != ASSERTION_TYPE or not assertion:
            raise _invalid_client(f"client_assertion_type must be {ASSERTION_TYPE} with a client_assertion")
        header, claims = _unverified(assertion)
        alg = header.get("alg")
        if alg not in ASSERTION_ALGORITHMS:
            raise _invalid_client(f"assertion algorithm {alg!r} is not accepted ({', '.join(ASSERTION_ALGORITHMS)})")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _invalid_client("the assertion header needs the kid of a registered key")
        client_id = claims.get("sub")
        if not isinstance(client_id, str) or not client_id or claims.get("iss") != client_id:
            raise _invalid_client("iss and sub of the assertion must both be the client_id")
        if form.get("client_id") not in (None, client_id):
            raise _invalid_client("client_id does not match the assertion")
        client = query_client(client_id)
        if client is None:
            raise _invalid_client("unknown or suspended client")
        if client.model.auth_method != PRIVATE_KEY_JWT or not client.model.jwks:
            raise _invalid_client("this client does not authenticate with private_key_jwt")
        key_set = KeySet.import_key_set(client.model.jwks)  # type: ignore[arg-type]
        try:
            key = key_set.get_by_kid(kid)
        except (JoseError, KeyError, ValueError) as error:
            raise _invalid_client("the assertion's kid is not one of the client's registered keys") from error
        key_alg = key.get("alg") if hasattr(key, "get") else None
        if key_alg and key_alg != alg:
            raise _invalid_client(f"key {kid} is registered for {key_alg}, not {alg}")
        try:
            token = jwt.decode(assertion, key, algorithms=[alg])
        except JoseError as error:
            raise _invalid_client("the assertion's signature does not verify with the registered key") from error
        now = self.server.now()
        self._check_claims(token.claims, client_id, request, now)
        exp = int(token.claims["exp"])
        jti = token.claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 255:
            raise _invalid_client("the assertion needs a jti (a unique string of at most 255 characters)")
        if not self.server.bridge(self.server.grants.use_assertion, client_id, jti, exp + ASSERTION_LEEWAY, now):
            raise _invalid_client("this assertion was used before (jti replay)")
        request.client = client
        return client

    def _check_claims(self, claims: dict[str, Any], client_id: str, request: OAuth2Request, now: int) -> None:
        registry = jwt.JWTClaimsRegistry(
            leeway=ASSERTION_LEEWAY,
            iss={"essential": True, "value": client_id},
            sub={"essential": True, "value": client_id},
            aud={"essential": True, "values": self.server.assertion_audiences(request)},
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as error:
            name = getattr(error, "claim", None) or error.error
            raise _invalid_client(f"assertion claim rejected: {name} ({error.description or error.error})") from error
        exp = claims["exp"]
        if not isinstance(exp, int | float) or exp > now + MAX_ASSERTION_LIFETIME + ASSERTION_LEEWAY:
            raise _invalid_client(f"the assertion's exp must be at most {MAX_ASSERTION_LIFETIME} s ahead")


# --- PKCE and the authorization request's own parameters ---------------------------------------------------------


class PkceS256(CodeChallenge):
    """Token side of PKCE: every code carries an S256 challenge, so every exchange needs its verifier."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def __init__(self) -> None:
        super().__init__(required=True)

    def __call__(self, grant: Any) -> None:
        grant.register_hook("after_validate_token_request", self.validate_code_verifier)

    def get_authorization_code_challenge(self, authorization_code: CodeRecord) -> str:
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code: CodeRecord) -> str:
        return "S256"


class AuthorizeChecks:
    """Authorization request checks beyond RFC 6749: PKCE S256 required (plain and missing refused), ``aud`` (when
    sent) must be this server's FHIR base URL, ``purpose_of_use`` must be a known code. Run once the redirect URI is
    validated, so their errors are redirected to the client."""

    def __init__(self, audience: str) -> None:
        self.audience = audience.rstrip("/")

    def __call__(self, grant: Any) -> None:
        grant.register_hook("after_validate_authorization_request_payload", self.check)

    def check(self, grant: Any, _result: Any) -> None:
        payload = grant.request.payload
        for name in ("code_challenge", "code_challenge_method", "aud", "purpose_of_use"):
            if len(payload.datalist.get(name, [])) > 1:
                raise InvalidRequestError(f"Multiple '{name}' in request.")
        data = payload.data
        challenge, method = data.get("code_challenge"), data.get("code_challenge_method")
        if not challenge:
            raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256")
        if method != "S256":
            raise InvalidRequestError("code_challenge_method must be S256 (plain is refused)")
        if not CODE_CHALLENGE_PATTERN.match(challenge):
            raise InvalidRequestError("code_challenge is not a base64url S256 challenge")
        aud = data.get("aud")
        if aud is not None and aud.rstrip("/") != self.audience:
            raise InvalidRequestError("aud is not the FHIR base URL of this server")
        purpose = data.get("purpose_of_use")
        if purpose and purpose not in policy.KNOWN_PURPOSES:
            raise InvalidRequestError(f"purpose_of_use {purpose} is not a supported v3 ActReason code")


# --- grants -----------------------------------------------------------------------------------------------------------


class CodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["private_key_jwt", "none"]
    AUTHORIZATION_CODE_LENGTH = 43  # 256 bits of entropy
    server: EsanteAuthorizationServer

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        grant: policy.Authorization = request.user
        self.server.bridge(
            self.server.grants.save_code,
            code,
            client_id=request.client.client_id,
            account_id=grant.account.id,
            redirect_uri=request.payload.redirect_uri,
            scope=grant.scope,
            person_id=grant.person_id,
            subject_role=grant.subject_role,
            code_challenge=request.payload.data["code_challenge"],
            purpose_of_use=grant.purpose_of_use,
            now=self.server.now(),
            ttl=self.server.settings.auth_code_ttl,
        )

    def query_authorization_code(self, code: str, client: AuthlibClient) -> CodeRecord | None:
        outcome, record = self.server.bridge(self.server.grants.consume_code, code, client.client_id, self.server.now())
        if outcome is CodeOutcome.REUSED:
            raise InvalidGrantError("this code was used before: the tokens issued from it are revoked")
        if outcome is CodeOutcome.EXPIRED:
            raise InvalidGrantError("the code has expired")
        return record

    def delete_authorization_code(self, authorization_code: CodeRecord) -> None:
        return None  # marked used when it was read (and kept, so a replay can still be detected)

    def authenticate_user(self, authorization_code: CodeRecord) -> policy.Authorization | None:
        code = authorization_code
        return self.server.authorization_of(
            code.account_id, code.created_at, code.subject_role, code.person_id, code.scope, code.purpose_of_use
        )

    def create_token_response(self) -> tuple[int, Any, list[tuple[str, str]]]:
        request = self.request
        code: CodeRecord = request.authorization_code
        grant = self.authenticate_user(code)
        if grant is None:
            raise InvalidGrantError("the account is no longer active")
        request.user = grant
        token = self.server.issue(request, grant.scope, grant, family=code.code_hash, code_hash=code.code_hash)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class ClientCredentials(ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["private_key_jwt"]
    server: EsanteAuthorizationServer

    def validate_requested_scope(self) -> None:
        try:
            self.request.scope = policy.system_scope(self.request.payload.scope, self.request.client.model)
            role_purpose = self.request.payload.data.get("purpose_of_use")
            self.purpose = policy.choose_purpose("system", role_purpose) if role_purpose else None
        except policy.PolicyError as error:
            raise (InvalidScopeError if error.error == "invalid_scope" else InvalidRequestError)(
                error.description
            ) from error

    def create_token_response(self) -> tuple[int, Any, list[tuple[str, str]]]:
        token = self.server.issue(self.request, self.request.scope, None, purpose=self.purpose)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class Refresh(RefreshTokenGrant):
    """Rotation: each use marks the refresh token used and issues a new one of the same family (same absolute
    expiry); a used or revoked one presented again revokes the whole family."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["private_key_jwt", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: EsanteAuthorizationServer

    def validate_token_request(self) -> None:
        client = self._validate_request_client()
        self.request.client = client
        value = self.request.form.get("refresh_token")
        if not value:
            raise InvalidRequestError("Missing 'refresh_token' in request.")
        record: RefreshRecord | None = self.server.bridge(self.server.grants.find_refresh, value)
        now = self.server.now()
        if record is None or not record.check_client(client):
            raise InvalidGrantError("unknown refresh token")
        if record.used_at is not None or record.revoked:
            self.server.bridge(self.server.grants.revoke_family, record.family, now)
            raise InvalidGrantError("this refresh token was used or revoked before: its whole family is revoked")
        if now >= record.expires_at:
            raise InvalidGrantError("the refresh token has expired: sign in again")
        self._validate_token_scope(record)
        if not self.server.bridge(self.server.grants.use_refresh, record, now):
            raise InvalidGrantError("this refresh token was used concurrently: its whole family is revoked")
        self.request.refresh_token = record

    def create_token_response(self) -> tuple[int, Any, list[tuple[str, str]]]:
        record: RefreshRecord = self.request.refresh_token
        grant = self.server.authorization_of(
            record.account_id, record.created_at, record.subject_role, record.person_id, record.scope,
            record.purpose_of_use,
        )  # fmt: skip
        if grant is None or record.created_at < self.request.client.model.tokens_valid_after:
            self.server.bridge(self.server.grants.revoke_family, record.family, self.server.now())
            raise InvalidGrantError("the account or client is no longer active")
        self.request.user = grant
        scope = self.request.payload.scope or record.scope
        token = self.server.issue(self.request, scope, grant, family=record.family, family_expires=record.expires_at)
        return 200, token, self.TOKEN_RESPONSE_HEADER


# --- introspection and revocation ---------------------------------------------------------------------------------


@dataclass
class InspectedToken:
    """A token found by introspection or revocation (active or not)."""

    kind: str  # access_token | refresh_token
    client_id: str
    payload: dict[str, Any] = field(default_factory=dict)
    active: bool = True
    jti: str | None = None
    expires_at: int = 0
    family: str | None = None

    def check_client(self, client: AuthlibClient) -> bool:
        return client.client_id == self.client_id

    def is_expired(self) -> bool:
        return False  # decided when it was looked up (``active``)

    def is_revoked(self) -> bool:
        return not self.active


class Introspection(IntrospectionEndpoint):
    """RFC 7662 / IHE ITI-102: any registered client authenticated with private_key_jwt may ask; an inactive token
    (expired, badly signed, revoked, account or client no longer active) yields only ``{"active": false}``."""

    CLIENT_AUTH_METHODS = ["private_key_jwt"]
    server: EsanteAuthorizationServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> InspectedToken | None:
        return self.server.inspect(token_string, token_type_hint, check_activity=True)

    def check_permission(self, token: InspectedToken, client: AuthlibClient, request: OAuth2Request) -> bool:
        return True  # the caller holds the token already; introspection only adds whether it is still active

    def introspect_token(self, token: InspectedToken) -> dict[str, Any]:
        return {"active": True, **token.payload}


class Revocation(RevocationEndpoint):
    """RFC 7009: a client revokes its own access token (jti listed until exp) or refresh token (whole family).
    Unknown, expired or malformed tokens get 200 as well."""

    CLIENT_AUTH_METHODS = ["private_key_jwt", "none"]
    server: EsanteAuthorizationServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> InspectedToken | None:
        return self.server.inspect(token_string, token_type_hint, check_activity=False)

    def revoke_token(self, token: InspectedToken, request: OAuth2Request) -> None:
        now = self.server.now()
        if token.kind == "refresh_token" and token.family:
            self.server.bridge(self.server.grants.revoke_family, token.family, now)
        elif token.jti:
            self.server.bridge(self.server.grants.revoke_access, token.jti, max(token.expires_at, now))


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
        request = StarletteOAuth2Request(http)
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
        account: Account | None = self.bridge(self.accounts.get, account_id)
        if account is None or account.status is not AccountStatus.ACTIVE or granted_at < account.tokens_valid_after:
            return None
        return policy.Authorization(account, subject_role, person_id, scope, purpose_of_use)

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
    ) -> dict[str, Any]:
        """Mint the access token (and, for a person whose authorization has offline_access or online_access and
        whose client may refresh, a refresh token of ``family``); record what must be recorded; fill the trace."""
        client: OAuthClient = request.client.model
        now = self.now()
        ttl = self.settings.token_ttl
        if grant is not None:
            subject, iua, extra = policy.person_claims(grant)
        else:
            subject, iua, extra = policy.system_claims(client, purpose)
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
            account = self.bridge(self.accounts.get, record.account_id)
            active = (
                client is not None
                and client.active
                and record.created_at >= client.tokens_valid_after
                and account is not None
                and account.status is AccountStatus.ACTIVE
                and record.created_at >= account.tokens_valid_after
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
