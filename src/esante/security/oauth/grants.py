"""The authlib grants of the platform: authorization code with PKCE (S256 only), client credentials, refresh token
with rotation and reuse detection; and the authorization request's own checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, ClientCredentialsGrant, RefreshTokenGrant
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7636.challenge import CODE_CHALLENGE_PATTERN

from esante.security.oauth import grants_policy as policy
from esante.security.oauth.grant_store import CodeOutcome, CodeRecord, RefreshRecord
from esante.security.oauth.integration import AuthlibClient
from esante.security.standing import ProfessionalRef

if TYPE_CHECKING:
    from esante.security.oauth.server import EsanteAuthorizationServer

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
        found = self.server.authorization_or_refusal(
            code.account_id, code.created_at, code.subject_role, code.person_id, code.scope, code.purpose_of_use
        )
        if isinstance(found, str):  # the account, the delegation or the professional's standing changed
            raise InvalidGrantError(found)
        return found

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
            self.acting_for = policy.acting_for(self.request.payload.datalist.get(policy.ACTING_FOR_PARAMETER, []))
        except policy.PolicyError as error:
            raise (InvalidScopeError if error.error == "invalid_scope" else InvalidRequestError)(
                error.description
            ) from error
        if self.acting_for is not None:  # the professional must be allowed to practise (HPD), now
            who = ProfessionalRef(self.acting_for, None)
            refused = self.server.bridge(self.server.accounts.standing_refusal, who, None)
            if refused is not None:
                raise InvalidGrantError(f"cannot act for professional {self.acting_for}: {refused.message}")

    def create_token_response(self) -> tuple[int, Any, list[tuple[str, str]]]:
        token = self.server.issue(
            self.request, self.request.scope, None, purpose=self.purpose, acting_for=self.acting_for
        )
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
        account = self.server.bridge(self.server.accounts.get, record.account_id)
        refused = self.server.standing_refusal(account, record.created_at)
        if refused is not None:  # said before "revoked": the withdrawal revoked the family, this is why
            raise InvalidGrantError(refused.message)
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
