"""The authorization server's HTTP routes: :func:`oauth_routes` (mounted by ``esante.app``).

| route | what |
|---|---|
| ``GET /.well-known/oauth-authorization-server`` | RFC 8414 metadata (IHE IUA ITI-103) |
| ``GET /.well-known/smart-configuration`` | SMART App Launch 2.x configuration |
| ``GET, POST /oauth/authorize`` | authorization code + PKCE, login and consent pages (``authorize``) |
| ``POST /oauth/token`` | ITI-71: authorization_code, client_credentials, refresh_token |
| ``POST /oauth/introspect`` | RFC 7662 / ITI-102 |
| ``POST /oauth/revoke`` | RFC 7009 |

Token, introspection and revocation requests share one rate limit per client address (``rate_limit_token`` a
minute, per worker: 429 with ``Retry-After``). Every token request, granted or refused (rate-limited ones
included), appends an IHE.IUA.71 AuditEvent when the platform audits.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from authlib.oauth2.rfc6749 import InsecureTransportError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from esante.config import Settings
from esante.db.engine import Database
from esante.security.audit_auth import AuditUser, TokenRequestAudit, token_request_event
from esante.security.audit_trail import Auditor
from esante.security.keys import KeyRing
from esante.security.oauth.authorize import authorize_get, authorize_post
from esante.security.oauth.client_store import ClientStore
from esante.security.oauth.context import Accounts, FormError, OAuthContext, client_address, instant, read_form
from esante.security.oauth.grant_store import GrantStore
from esante.security.oauth.integration import INSECURE_TRANSPORT, HttpInput, StarletteOAuth2Request
from esante.security.oauth.metadata import Endpoints, authorization_server_metadata, smart_configuration
from esante.security.oauth.server import EsanteAuthorizationServer
from esante.security.ratelimit import RateLimiter

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class PlatformLike(Protocol):
    """What the routes need from ``esante.app.Platform``."""

    settings: Settings
    database: Database
    keyring: KeyRing
    auditor: Auditor | None


def build_context(
    platform: PlatformLike, accounts: Accounts | None = None, limiter: RateLimiter | None = None
) -> OAuthContext:
    """Wire the authorization server on a platform (its database, keys, settings and auditor).

    Accounts default to the platform's account service and the limiter to its ``login_limiter``, so the login
    page shares one budget per client address with the other password-taking endpoints (bucket ``login``).
    """
    settings = platform.settings
    if accounts is None:
        accounts = getattr(platform, "accounts", None)
    if accounts is None:
        from esante.security.accounts.service import AccountService

        accounts = AccountService(platform.database, settings)
    clients = ClientStore(platform.database)
    grants = GrantStore(platform.database, settings.token_max_ttl)
    server = EsanteAuthorizationServer(settings, platform.keyring, clients, grants, accounts)
    return OAuthContext(
        settings=settings,
        keyring=platform.keyring,
        server=server,
        clients=clients,
        grants=grants,
        accounts=accounts,
        limiter=limiter or getattr(platform, "login_limiter", None) or RateLimiter(),
        auditor=platform.auditor,
        urls=Endpoints.of(settings),
    )


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _oauth_error(error: str, description: str, status: int = 400, headers: dict[str, str] | None = None) -> Response:
    return _json({"error": error, "error_description": description}, status, {**_NO_STORE, **(headers or {})})


def _insecure() -> Response:
    return _oauth_error("insecure_transport", INSECURE_TRANSPORT)


def _claimed_client(params: list[tuple[str, str]]) -> str | None:
    """The client a refused request said it was (form client_id, else the unverified assertion's sub)."""
    values = dict(params)
    if values.get("client_id"):
        return values["client_id"][:128]
    assertion = values.get("client_assertion", "")
    try:
        body = assertion.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        sub = claims.get("sub") if isinstance(claims, dict) else None
    except (IndexError, ValueError):
        return None
    return sub[:128] if isinstance(sub, str) else None


def _audit_user(request: StarletteOAuth2Request) -> AuditUser | None:
    grant = request.trace.authorization
    if grant is None:
        return None
    account = grant.account
    return AuditUser(
        account_id=account.id,
        kind=account.kind.value,
        subject_role=grant.subject_role,
        display=account.display_name or account.username,
        person_id=grant.person_id,
        purpose_of_use=grant.purpose_of_use,
    )


def _limited(ctx: OAuthContext, request: Request) -> Response | None:
    wait = ctx.limiter.hit("token", client_address(request) or "unknown", ctx.settings.rate_limit_token)
    if wait is None:
        return None
    return _oauth_error(
        "temporarily_unavailable",
        f"too many requests: retry after {int(wait)} s",
        429,
        {"Retry-After": str(int(wait))},
    )


async def token_endpoint(ctx: OAuthContext, request: Request) -> Response:
    address = client_address(request)
    params: list[tuple[str, str]] = []
    oauth_request: StarletteOAuth2Request | None = None
    response = _limited(ctx, request)
    if response is None:
        try:
            params = await read_form(request)
        except FormError as failure:
            response = _oauth_error("invalid_request", str(failure))
    if response is None:
        http = HttpInput("POST", ctx.urls.token, dict(request.headers), params, address)
        try:
            oauth_request = StarletteOAuth2Request(http)
        except InsecureTransportError:
            response = _insecure()
        else:
            response = await run_in_threadpool(ctx.server.create_token_response, oauth_request)
    assert response is not None
    await ctx.audit([token_request_event(_token_audit(ctx, address, params, oauth_request, response))])
    return response


def _token_audit(
    ctx: OAuthContext,
    address: str | None,
    params: list[tuple[str, str]],
    oauth_request: StarletteOAuth2Request | None,
    response: Response,
) -> TokenRequestAudit:
    ok = response.status_code == 200
    trace = oauth_request.trace if oauth_request is not None else None
    error = trace.error if trace is not None else None
    if error is None and not ok:
        body = orjson.loads(response.body) if response.body else {}
        error = body.get("error") if isinstance(body, dict) else None
    client = getattr(oauth_request, "client", None)
    return TokenRequestAudit(
        recorded=instant(),
        endpoint=ctx.urls.token,
        issuer=ctx.urls.issuer,
        form=params,
        client_address=address,
        client_id=client.client_id if client is not None else _claimed_client(params),
        outcome_ok=ok,
        error=error or (None if ok else "refused"),
        error_description=trace.error_description if trace is not None else None,
        user=_audit_user(oauth_request) if oauth_request is not None else None,
        jti=trace.jti if trace is not None and ok else None,
        scope=trace.scope if trace is not None else None,
        expires_in=trace.expires_in if trace is not None else None,
    )


async def _endpoint(ctx: OAuthContext, request: Request, name: str, url: str) -> Response:
    limited = _limited(ctx, request)
    if limited is not None:
        return limited
    try:
        params = await read_form(request)
    except FormError as error:
        return _oauth_error("invalid_request", str(error))
    http = HttpInput("POST", url, dict(request.headers), params, client_address(request))
    try:
        oauth_request = StarletteOAuth2Request(http)
    except InsecureTransportError:
        return _insecure()
    response: Response = await run_in_threadpool(ctx.server.create_endpoint_response, name, oauth_request)
    return response


def oauth_routes(
    platform: PlatformLike, accounts: Accounts | None = None, limiter: RateLimiter | None = None
) -> list[Route]:
    """The authorization server's routes on ``platform`` (accounts default to an AccountService on its database)."""
    ctx = build_context(platform, accounts, limiter)

    def bind(
        handler: Callable[[OAuthContext, Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await handler(ctx, request)

        return endpoint

    async def as_metadata(_request: Request) -> Response:
        return _json(authorization_server_metadata(ctx.settings), headers={"Cache-Control": "public, max-age=300"})

    async def smart(_request: Request) -> Response:
        return _json(smart_configuration(ctx.settings), headers={"Cache-Control": "public, max-age=300"})

    async def introspect(request: Request) -> Response:
        return await _endpoint(ctx, request, "introspection", ctx.urls.introspect)

    async def revoke(request: Request) -> Response:
        return await _endpoint(ctx, request, "revocation", ctx.urls.revoke)

    return [
        Route("/.well-known/oauth-authorization-server", as_metadata, methods=["GET"]),
        Route("/.well-known/smart-configuration", smart, methods=["GET"]),
        Route("/oauth/authorize", bind(authorize_get), methods=["GET"]),
        Route("/oauth/authorize", bind(authorize_post), methods=["POST"]),
        Route("/oauth/token", bind(token_endpoint), methods=["POST"]),
        Route("/oauth/introspect", introspect, methods=["POST"]),
        Route("/oauth/revoke", revoke, methods=["POST"]),
    ]
