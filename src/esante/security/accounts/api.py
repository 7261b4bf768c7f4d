"""The account endpoints people reach before they can log in: activation, TOTP confirmation, password reset.

JSON in, JSON out; every refusal is a FHIR OperationOutcome with a 4xx status. Each endpoint counts against the
per-address login rate limit (``rate_limit_login`` per minute): these endpoints check secrets, so they are guessing
targets like the login form. Secrets in requests (codes, passwords) are never logged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from esante.fhir.errors import FhirError, Issue, error
from esante.fhir.http import error_response
from esante.security.accounts.model import Account, AccountError
from esante.security.accounts.service import AccountService
from esante.security.ratelimit import RateLimiter

MAX_BODY = 16 * 1024
RATE_BUCKET = "login"

# AccountError code → (HTTP status, OperationOutcome issue code)
_STATUS: dict[str, tuple[int, str]] = {
    "activation_failed": (400, "invalid"),
    "reset_failed": (400, "invalid"),
    "code_expired": (400, "expired"),
    "weak_password": (400, "invalid"),
    "no_enrolment": (409, "conflict"),
    "invalid_credentials": (401, "login"),
    "second_factor_required": (401, "login"),
    "locked": (403, "security"),
    "inactive": (403, "forbidden"),
    "suspended": (403, "forbidden"),
    "closed": (403, "forbidden"),
}

Handler = Callable[[AccountService, dict[str, Any]], Awaitable[dict[str, Any]]]


def _account_json(account: Account) -> dict[str, Any]:
    return {"id": account.id, "username": account.username, "kind": account.kind.value, "status": account.status.value}


def _field(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise error(400, "required", f"the field '{name}' is required", expression=name)
        return None
    if not isinstance(value, str):
        raise error(400, "structure", f"the field '{name}' must be a string", expression=name)
    if required and not value.strip():
        raise error(400, "required", f"the field '{name}' is empty", expression=name)
    if len(value) > 1024:
        raise error(400, "too-long", f"the field '{name}' is too long", expression=name)
    return value


def _required(body: dict[str, Any], name: str) -> str:
    value = _field(body, name)
    assert value is not None
    return value


async def _activate(service: AccountService, body: dict[str, Any]) -> dict[str, Any]:
    result = await service.activate(
        _required(body, "username"),
        _required(body, "code"),
        _field(body, "matricule", required=False),
        _required(body, "email_or_mobile"),
        _required(body, "password"),
    )
    answer: dict[str, Any] = {"account": _account_json(result.account)}
    if result.enrolment is None:
        answer["next"] = "login"
    else:
        answer["next"] = "confirm_totp"
        answer["totp"] = {
            "secret": result.enrolment.secret,
            "otpauth_uri": result.enrolment.uri,
            "qr_svg": result.enrolment.qr_svg,
        }
    return answer


async def _confirm_totp(service: AccountService, body: dict[str, Any]) -> dict[str, Any]:
    account = await service.confirm_totp(
        _required(body, "username"), _required(body, "password"), _required(body, "totp_code")
    )
    return {"account": _account_json(account), "next": "login"}


async def _reset(service: AccountService, body: dict[str, Any]) -> dict[str, Any]:
    account = await service.reset_password(
        _required(body, "username"),
        _required(body, "code"),
        _field(body, "matricule", required=False),
        _required(body, "password"),
        _field(body, "totp_code", required=False),
    )
    return {"account": _account_json(account), "next": "login"}


async def _body(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise error(415, "not-supported", "send the request body as application/json")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise error(413, "too-costly", f"the request body exceeds {MAX_BODY} bytes")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise error(413, "too-costly", f"the request body exceeds {MAX_BODY} bytes")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise error(400, "structure", "the request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise error(400, "structure", "the request body must be a JSON object")
    return body


def _account_error(exc: AccountError) -> FhirError:
    """The OperationOutcome of a refused use case; ``issue.details.coding.code`` carries the stable error code."""
    status, code = _STATUS.get(exc.code, (400, "invalid"))
    return FhirError(status, [Issue(code=code, diagnostics=exc.message, details_code=exc.code)])


def _endpoint(
    service: AccountService, limiter: RateLimiter, handler: Handler
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        address = request.client.host if request.client else "unknown"
        try:
            wait = limiter.hit(RATE_BUCKET, address, service.settings.rate_limit_login)
            if wait is not None:
                throttled = error(429, "throttled", "too many attempts from this address; try again later")
                throttled.headers["Retry-After"] = str(int(wait))
                raise throttled
            answer = await handler(service, await _body(request))
        except AccountError as exc:
            return error_response(_account_error(exc))
        except FhirError as exc:
            return error_response(exc)
        return Response(orjson.dumps(answer), media_type="application/json", headers={"Cache-Control": "no-store"})

    return endpoint


def account_routes(service: AccountService, limiter: RateLimiter | None = None) -> list[Route]:
    """The routes to mount (POST only). ``limiter`` may be shared with the login form so both count together."""
    limiter = limiter or RateLimiter()
    return [
        Route("/account/activate", _endpoint(service, limiter, _activate), methods=["POST"]),
        Route("/account/activate/totp", _endpoint(service, limiter, _confirm_totp), methods=["POST"]),
        Route("/account/password-reset", _endpoint(service, limiter, _reset), methods=["POST"]),
    ]
