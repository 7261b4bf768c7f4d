"""The authorization endpoint (IHE IUA ITI-71 authorization code, SMART App Launch standalone): three steps, no
server-side session.

1. ``GET /oauth/authorize?response_type=code&client_id=…&redirect_uri=…&scope=…&state=…&code_challenge=…
   &code_challenge_method=S256[&aud=…][&purpose_of_use=…]`` — authlib validates the request; the login page is
   shown with a *login ticket* (see ``tickets``) carrying the request. Errors before the redirect URI is known to
   be the client's are shown as a page (never redirected: RFC 6749 §4.1.2.1); later ones go back to the client.
2. ``POST step=login`` (ticket, username, password, TOTP code) — rate-limited per client address; the account
   service checks the credentials (lockout included); every attempt is audited (DCM 110122 Login). Success shows
   the consent page: the scopes in words and, for a patient account with delegations, the choice of patient
   (themself or a patient they assist), with a single-use *consent ticket* naming the account.
3. ``POST step=consent`` (ticket, decision, patient) — ``allow`` redirects to the client with a code bound to the
   account, the patient, the scope, the PKCE challenge and the redirect URI; ``deny`` redirects with
   ``access_denied``.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from esante.security.accounts.model import Account, AccountKind, AccountStatus, AuthenticationError
from esante.security.audit_auth import LoginAudit, login_event
from esante.security.oauth import grants_policy as policy
from esante.security.oauth import tickets
from esante.security.oauth.context import FormError, OAuthContext, client_address, instant, read_form
from esante.security.oauth.integration import (
    AuthorizationPageError,
    AuthorizationRedirect,
    HttpInput,
    ValidatedAuthorization,
)
from esante.security.oauth.pages import describe_scopes, render
from esante.security.standing import professional_of_account

_TITLES = {
    "invalid_client": "Unknown application",
    "unauthorized_client": "Application not allowed",
    "invalid_request": "Invalid sign-in request",
    "ticket": "Sign-in interrupted",
    "account": "Account not available",
}
_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "aud",
    "purpose_of_use",
    "launch",
)


def error_page(error: str, description: str, status: int = 400) -> Response:
    title = _TITLES.get(error, "Sign-in problem")
    return render("oauth_error.html", status=status, title=title, error=error, description=description)


def _http(ctx: OAuthContext, request: Request, params: list[tuple[str, str]]) -> HttpInput:
    return HttpInput("GET", ctx.urls.authorize, dict(request.headers), params, client_address(request))


def _ticket_params(ticket: dict[str, Any]) -> list[tuple[str, str]]:
    request = ticket["req"]
    return [(name, str(request[name])) for name in _PARAMS if isinstance(request.get(name), str)]


async def _validate(ctx: OAuthContext, http: HttpInput) -> ValidatedAuthorization:
    return await run_in_threadpool(ctx.server.validate_authorization, http)


async def authorize_get(ctx: OAuthContext, request: Request) -> Response:
    http = _http(ctx, request, list(request.query_params.multi_items()))
    try:
        validated = await _validate(ctx, http)
    except AuthorizationRedirect as redirect:
        return redirect.response
    except AuthorizationPageError as error:
        return error_page(error.error, error.description)
    carried = {name: value for name, value in validated.params.items() if name in _PARAMS}
    ticket = await run_in_threadpool(tickets.issue, ctx.keyring, ctx.urls.issuer, tickets.LOGIN, carried)
    return _login_page(ctx, validated, ticket)


def _login_page(
    ctx: OAuthContext, validated: ValidatedAuthorization, ticket: str, error: str | None = None, username: str = ""
) -> Response:
    return render(
        "oauth_login.html",
        client_name=validated.client.name,
        ticket=ticket,
        action=ctx.urls.authorize,
        error=error,
        username=username,
    )


async def authorize_post(ctx: OAuthContext, request: Request) -> Response:
    try:
        form = dict(await read_form(request))
    except FormError as error:
        return error_page("invalid_request", str(error))
    step = form.get("step")
    if step == "login":
        return await _login(ctx, request, form)
    if step == "consent":
        return await _consent(ctx, request, form)
    return error_page("invalid_request", "unknown step: start again from the application")


async def _read_ticket(ctx: OAuthContext, form: dict[str, str], stage: str) -> dict[str, Any]:
    return await run_in_threadpool(tickets.read, ctx.keyring, ctx.urls.issuer, form.get("ticket", ""), stage)


async def _login(ctx: OAuthContext, request: Request, form: dict[str, str]) -> Response:
    try:
        ticket = await _read_ticket(ctx, form, tickets.LOGIN)
    except tickets.TicketError as error:
        return error_page("ticket", str(error))
    http = _http(ctx, request, _ticket_params(ticket))
    try:
        validated = await _validate(ctx, http)  # the client may have been suspended meanwhile
    except AuthorizationRedirect as redirect:
        return redirect.response
    except AuthorizationPageError as error:
        return error_page(error.error, error.description)
    username = form.get("username", "").strip()[:128]
    address = client_address(request)
    audit = LoginAudit(
        recorded=instant(),
        issuer=ctx.urls.issuer,
        username=username,
        client_address=address,
        client_id=validated.client.client_id,
        outcome_ok=False,
    )
    wait = ctx.limiter.hit("login", address or "unknown", ctx.settings.rate_limit_login)
    if wait is not None:
        await ctx.audit([login_event(_with(audit, reason="rate_limited"))])
        return _rate_limited_page(ctx, validated, form.get("ticket", ""), username, int(wait))
    try:
        account = await ctx.accounts.authenticate(username, form.get("password", ""), form.get("totp") or None, address)
    except AuthenticationError as error:
        await ctx.audit([login_event(_with(audit, reason=error.code))])
        return _login_page(ctx, validated, form.get("ticket", ""), error=error.message, username=username)
    await ctx.audit(
        [login_event(_with(audit, outcome_ok=True, account_id=account.id, account_kind=account.kind.value))]
    )
    choices = policy.patient_choices(account, await ctx.accounts.delegations(account.id))
    try:
        scope = policy.person_scope(validated.params.get("scope"), validated.client, has_patient=bool(choices))
    except policy.PolicyError as error:
        return await run_in_threadpool(ctx.server.refuse_authorization, http, error.error, error.description)
    consent = await run_in_threadpool(
        tickets.issue, ctx.keyring, ctx.urls.issuer, tickets.CONSENT, ticket["req"], acct=account.id, patients=choices
    )
    return render(
        "oauth_consent.html",
        client_name=validated.client.name,
        account_name=account.display_name or account.username,
        scopes=describe_scopes(scope),
        patients=_patient_options(account, choices),
        ticket=consent,
        action=ctx.urls.authorize,
    )


def _rate_limited_page(ctx: OAuthContext, validated: ValidatedAuthorization, ticket: str, username: str,
                       wait: int) -> Response:  # fmt: skip
    page = _login_page(
        ctx,
        validated,
        ticket,
        error=f"Too many sign-in attempts: wait {wait} seconds and try again.",
        username=username,
    )
    page.status_code = 429
    page.headers["Retry-After"] = str(wait)
    return page


def _with(audit: LoginAudit, **changes: Any) -> LoginAudit:
    from dataclasses import replace

    return replace(audit, **changes)


def _patient_options(account: Account, choices: list[str]) -> list[dict[str, str]]:
    options = []
    for patient in choices:
        if patient == account.patient_id:
            options.append({"id": patient, "label": f"Myself (Patient/{patient})"})
        else:
            options.append({"id": patient, "label": f"Patient/{patient}, whom I assist"})
    return options


async def _consent(ctx: OAuthContext, request: Request, form: dict[str, str]) -> Response:
    try:
        ticket = await _read_ticket(ctx, form, tickets.CONSENT)
    except tickets.TicketError as error:
        return error_page("ticket", str(error))
    now = ctx.server.now()
    if not await ctx.grants.use_assertion("urn:esante:consent-ticket", str(ticket.get("jti")), ticket["exp"], now):
        return error_page("ticket", "this consent form was already submitted: start again from the application")
    http = _http(ctx, request, _ticket_params(ticket))
    try:
        validated = await _validate(ctx, http)
    except AuthorizationRedirect as redirect:
        return redirect.response
    except AuthorizationPageError as error:
        return error_page(error.error, error.description)
    if form.get("decision") != "allow":
        return await run_in_threadpool(ctx.server.complete_authorization, http, None)
    account = await ctx.accounts.get(str(ticket.get("acct")))
    if account is None or account.status is not AccountStatus.ACTIVE:
        return error_page("account", "this account is no longer active")
    refused = await ctx.accounts.standing_refusal(professional_of_account(account))
    if refused is not None:  # e.g. the right to practise was withdrawn between the login and the consent
        return error_page("account", refused.message, status=403)
    choices = [str(p) for p in ticket.get("patients") or []]
    patient = form.get("patient") or None
    if choices and patient not in choices:
        return error_page("invalid_request", "choose one of the patients offered")
    if not choices:
        patient = None
    if account.kind is AccountKind.PATIENT and patient is None:
        return error_page("account", "this patient account is not linked to a patient")
    role = policy.subject_role(account, patient)
    try:
        purpose = policy.choose_purpose(role, validated.params.get("purpose_of_use"))
        scope = policy.person_scope(validated.params.get("scope"), validated.client, has_patient=patient is not None)
    except policy.PolicyError as error:
        return await run_in_threadpool(ctx.server.refuse_authorization, http, error.error, error.description)
    authorization = policy.Authorization(account, role, patient, scope, purpose)
    return await run_in_threadpool(ctx.server.complete_authorization, http, authorization)
