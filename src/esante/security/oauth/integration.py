"""authlib on Starlette: the plain request handed to authlib's worker thread, authlib's request and client views,
and the bridge back to the event loop.

authlib's server is synchronous; the route handler reads the Starlette request first (body and form are async) and
hands a plain :class:`HttpInput` to the thread, where :class:`StarletteOAuth2Request` gives authlib its usual view
(parameters from the body of a POST, the query of a GET). Database calls made from that thread go back to the event
loop through :class:`Bridge` (``anyio.from_thread.run``). See ``server`` for why.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.from_thread
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    OAuth2Payload,
    OAuth2Request,
)
from starlette.responses import Response

from esante.security.oauth import grants_policy as policy
from esante.security.oauth.clients import AUTHORIZATION_CODE, OAuthClient

T = TypeVar("T")
INSECURE_TRANSPORT = (
    "the authorization server's public URL (token_issuer or base_url) must use https, or http on a loopback address"
)

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
