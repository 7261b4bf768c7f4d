"""``private_key_jwt`` client authentication (RFC 7523 §2.2, SMART Backend Services) for authlib."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import (
    InvalidClientError,
    OAuth2Request,
)
from authlib.oauth2.rfc7523.client import ASSERTION_TYPE
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from esante.security.oauth.clients import ASSERTION_ALGORITHMS, PRIVATE_KEY_JWT
from esante.security.oauth.integration import AuthlibClient

MAX_ASSERTION_LIFETIME = 300  # SMART Backend Services: exp no more than five minutes ahead
ASSERTION_LEEWAY = 30  # clock skew tolerated on the assertion's exp, nbf and iat

if TYPE_CHECKING:
    from esante.security.oauth.server import EsanteAuthorizationServer

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
