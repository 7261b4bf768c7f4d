"""The authorization pages: login, consent and error, server-rendered with jinja2 (no JavaScript).

Templates live in ``esante/security/templates/oauth_*.html`` with autoescaping on. Every page is sent with
``Cache-Control: no-store`` (it holds a ticket), ``X-Frame-Options: DENY`` and a CSP forbidding frames, scripts and
any other origin (clickjacking and injection), and ``Referrer-Policy: no-referrer`` (the URL holds the request).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse

from esante.security.scopes import ResourceScope, parse_scope

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_VERBS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
_FLAGS = {
    "openid": "confirm your identity to the application",
    "fhirUser": "know who you are (your patient or practitioner record)",
    "profile": "see your name",
    "launch": "receive the launch context",
    "launch/patient": "know which patient is selected",
    "offline_access": "keep access when you are not using it (until you revoke it or it expires)",
    "online_access": "keep access while you are using it",
}


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("esante.security", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=False,
    )


def render(template: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    html = _environment().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _describe_resource(scope: ResourceScope) -> str:
    verbs = _join([_VERBS[letter] for letter in "cruds" if letter in scope.interactions])
    what = "all data" if scope.resource_type == "*" else f"{scope.resource_type} records"
    whose = {
        "patient": "of the selected patient",
        "user": "you are allowed to see",
        "system": "of the platform",
    }[scope.context]
    text = f"{verbs} {what} {whose}"
    if scope.query:
        text += " (only: " + ", ".join(f"{name} = {value}" for name, value in scope.query) + ")"
    return text[0].upper() + text[1:]


def describe_scopes(scope: str) -> list[str]:
    """The scope, in words, one line per scope (for the consent page)."""
    lines: list[str] = []
    for item in scope.split():
        parsed = parse_scope(item)
        if isinstance(parsed, ResourceScope):
            lines.append(_describe_resource(parsed))
        else:
            text = _FLAGS.get(item, item)
            lines.append(text[0].upper() + text[1:])
    return lines
