"""Checks and normal forms of what an operator or a person types for an account (pure functions).

Usernames are compared case-insensitively (stored lower-case); e-mail addresses lower-cased; mobile numbers
reduced to ``+`` and digits, so the activation check compares like with like.
"""

from __future__ import annotations

import re

from esante.identifiers.ehealth_id import EHealthIdError, parse_ehealth_id
from esante.identifiers.matricule import MatriculeError, parse_matricule
from esante.security.accounts.model import AccountError, StaffRole

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{2,127}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s.]{2,}$")
_MOBILE = re.compile(r"^\+?[0-9]{6,15}$")
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def normalize_username(text: str) -> str:
    return text.strip().lower()


def check_username(text: str) -> str:
    value = normalize_username(text)
    if not _USERNAME.match(value):
        raise AccountError(
            "invalid_username",
            "a username has 3 to 128 characters: letters, digits and . _ @ - (starting with a letter or digit)",
        )
    return value


def normalize_email(text: str) -> str:
    return text.strip().lower()


def check_email(text: str) -> str:
    value = normalize_email(text)
    if len(value) > 255 or not _EMAIL.match(value):
        raise AccountError("invalid_email", "the e-mail address is not valid")
    return value


def normalize_mobile(text: str) -> str:
    value = re.sub(r"[\s().\-/]", "", text.strip())
    return "+" + value[2:] if value.startswith("00") else value


def check_mobile(text: str) -> str:
    value = normalize_mobile(text)
    if not _MOBILE.match(value):
        raise AccountError("invalid_mobile", "the mobile number must have 6 to 15 digits, optionally after a +")
    return value


def check_matricule(text: str) -> str:
    try:
        return parse_matricule(text).value
    except MatriculeError as error:
        raise AccountError("invalid_matricule", str(error)) from error


def normalize_matricule(text: str | None) -> str:
    """For comparisons: digits only (a malformed value simply never matches)."""
    return "".join(ch for ch in (text or "") if ch.isdigit())


def check_ehealth_id(text: str) -> str:
    try:
        return parse_ehealth_id(text)
    except EHealthIdError as error:
        raise AccountError("invalid_ehealth_id", str(error)) from error


def check_roles(values: tuple[str, ...] | list[str]) -> tuple[StaffRole, ...]:
    roles: list[StaffRole] = []
    for value in values:
        try:
            role = StaffRole(value.strip())
        except ValueError as error:
            allowed = ", ".join(r.value for r in StaffRole)
            raise AccountError("invalid_role", f"unknown staff role {value!r} (one of: {allowed})") from error
        if role not in roles:
            roles.append(role)
    return tuple(sorted(roles))


def check_fhir_id(text: str, what: str) -> str:
    value = text.strip()
    if not _FHIR_ID.match(value):
        raise AccountError("invalid_link", f"the {what} id is not a FHIR id (1-64 letters, digits, - and .)")
    return value


def contact_matches(given: str, email: str | None, mobile: str | None) -> bool:
    """Whether what a person typed is the account's e-mail or mobile number."""
    if not given or not given.strip():
        return False
    if email and normalize_email(given) == email:
        return True
    return bool(mobile) and normalize_mobile(given) == mobile
