"""Notification kinds: what a notification is about, and the fixed e-mail text each kind sends. Pure (the file is
read once).

A kind is a code (``dsp-new-document``) the services name when they notify; the Communication carries it as its
category and the e-mail is chosen by it. The e-mail texts are fixed per kind and language with a single
placeholder, ``{portal_url}``: nothing a service passes (document titles, vaccine names, a professional's name)
can reach an e-mail, by construction. Texts come from the packaged ``data/kinds.json``; an operator may replace
them with a file of the same layout (``notify_templates_file``), kind by kind.

Services add kinds of their own with :func:`register_kind` at import time (with texts in the languages the
platform sends); the four kinds of the DSP and CVE issues are packaged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

KIND_SYSTEM = "urn:esante:notification-kind"  # Communication.category coding system
PRIORITIES = ("routine", "urgent", "asap", "stat")  # FHIR request-priority


@dataclass(frozen=True)
class EmailText:
    subject: str
    body: str  # may hold {portal_url}; nothing else is substituted


@dataclass(frozen=True)
class NotificationKind:
    code: str
    display: str
    priority: str = "routine"
    email: dict[str, EmailText] = field(default_factory=dict)  # language → text


@dataclass(frozen=True)
class KindCatalogue:
    """The kinds with their e-mail texts, and the footer added to every e-mail (per language)."""

    kinds: dict[str, NotificationKind]
    footer: dict[str, str]

    def get(self, code: str) -> NotificationKind | None:
        return self.kinds.get(code)


class KindError(ValueError):
    """A kinds file that cannot be used (the message names the problem)."""


def _text(value: Any, where: str) -> EmailText:
    texts = isinstance(value, dict) and isinstance(value.get("subject"), str) and isinstance(value.get("body"), str)
    if not texts:
        raise KindError(f"{where}: needs a 'subject' and a 'body' text")
    body = value["body"]
    try:
        body.format(portal_url="")
    except (KeyError, IndexError, ValueError) as exc:
        raise KindError(f"{where}: the body may only use the placeholder {{portal_url}} ({exc})") from exc
    subject = value["subject"]
    if "\n" in subject or "\r" in subject or not subject.strip():
        raise KindError(f"{where}: the subject must be one non-empty line")
    return EmailText(subject.strip(), body)


def parse_catalogue(data: Any, where: str = "kinds file") -> KindCatalogue:
    """Read a kinds document (the layout of ``data/kinds.json``)."""
    if not isinstance(data, dict) or not isinstance(data.get("kinds"), dict):
        raise KindError(f"{where}: needs an object 'kinds'")
    kinds: dict[str, NotificationKind] = {}
    for code, entry in data["kinds"].items():
        if not isinstance(entry, dict):
            raise KindError(f"{where}: kind {code!r} must be an object")
        check_code(code)
        priority = entry.get("priority", "routine")
        if priority not in PRIORITIES:
            raise KindError(f"{where}: kind {code!r}: priority must be one of {', '.join(PRIORITIES)}")
        email = entry.get("email", {})
        if not isinstance(email, dict):
            raise KindError(f"{where}: kind {code!r}: 'email' must map languages to texts")
        texts = {lang: _text(value, f"{where}: kind {code!r} language {lang!r}") for lang, value in email.items()}
        kinds[code] = NotificationKind(code, str(entry.get("display") or code), priority, texts)
    footer = data.get("footer", {})
    if not isinstance(footer, dict) or not all(isinstance(v, str) for v in footer.values()):
        raise KindError(f"{where}: 'footer' must map languages to texts")
    return KindCatalogue(kinds, dict(footer))


def check_code(code: Any) -> str:
    """A kind code: lower-case letters, digits and dashes, 2 to 64 characters."""
    if (
        not isinstance(code, str)
        or not 2 <= len(code) <= 64
        or not all(c.isascii() and (c.islower() or c.isdigit() or c == "-") for c in code)
    ):
        raise KindError(f"a notification kind is 2-64 lower-case letters, digits or dashes, not {code!r}")
    return code


@lru_cache(maxsize=1)
def packaged() -> KindCatalogue:
    raw = resources.files("esante.notify").joinpath("data/kinds.json").read_text(encoding="utf-8")
    return parse_catalogue(json.loads(raw), "packaged kinds.json")


_REGISTERED: dict[str, NotificationKind] = {}


def register_kind(kind: NotificationKind) -> None:
    """Add a service's own kind (at import time, before the platform starts)."""
    check_code(kind.code)
    if kind.priority not in PRIORITIES:
        raise KindError(f"kind {kind.code!r}: priority must be one of {', '.join(PRIORITIES)}")
    _REGISTERED[kind.code] = kind


def known_kinds() -> dict[str, NotificationKind]:
    """Every kind a service may notify with: the packaged ones and the registered ones."""
    return {**packaged().kinds, **_REGISTERED}


def catalogue(templates_file: str = "") -> KindCatalogue:
    """The kinds with the e-mail texts in force: an operator's file replaces texts kind by kind."""
    base = packaged()
    kinds = known_kinds()
    footer = dict(base.footer)
    if templates_file:
        path = Path(templates_file)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise KindError(f"notify_templates_file {path}: cannot be read as JSON ({exc})") from exc
        override = parse_catalogue(data, f"notify_templates_file {path}")
        for code, kind in override.kinds.items():
            if code not in kinds:
                raise KindError(f"notify_templates_file {path}: unknown kind {code!r}")
            kinds[code] = NotificationKind(code, kind.display, kind.priority, {**kinds[code].email, **kind.email})
        footer.update(override.footer)
    return KindCatalogue(kinds, footer)
