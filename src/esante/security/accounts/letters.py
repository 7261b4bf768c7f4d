"""The letters that carry one-time codes to people (activation, password reset), as plain text and printable HTML.

The letter is the out-of-band channel: the code travels on paper to the person's postal address, never through
the platform's logs or API answers other than to the operator who prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2


class LetterPurpose(StrEnum):
    ACTIVATION = "activation"
    RESET = "reset"


@dataclass(frozen=True)
class ActivationLetter:
    """The content of one letter (activation, or password reset when ``purpose`` says so)."""

    account_id: str
    name: str
    username: str
    code: str
    expires_at: int  # epoch seconds
    purpose: LetterPurpose = LetterPurpose.ACTIVATION
    password_min_length: int = 12

    @property
    def expiry_date(self) -> str:
        """The last day the code is valid, in Luxembourg time (YYYY-MM-DD)."""
        return datetime.fromtimestamp(self.expires_at, _zone()).strftime("%Y-%m-%d")

    @property
    def title(self) -> str:
        if self.purpose is LetterPurpose.RESET:
            return "Your eSanté password reset code"
        return "Activate your eSanté account"

    @property
    def instructions(self) -> tuple[str, ...]:
        if self.purpose is LetterPurpose.RESET:
            return (
                "Open the eSanté portal and choose 'Forgot password'.",
                "Enter your username, the code below and your matricule (national identification number).",
                f"Choose a new password of at least {self.password_min_length} characters; if you use an "
                "authenticator app, enter its current code too.",
                "If you did not ask for a new password, contact the eSanté helpdesk.",
            )
        return (
            "Open the eSanté portal and choose 'Activate my account'.",
            "Enter your username, the code below, your matricule (national identification number) and the "
            "e-mail address or mobile number you gave us.",
            f"Choose a password of at least {self.password_min_length} characters.",
            "Scan the QR code shown with an authenticator app and enter the 6-digit code it displays.",
            "Keep this letter private: the code opens your account once.",
        )


@lru_cache(maxsize=1)
def _zone() -> tzinfo:
    try:
        return ZoneInfo("Europe/Luxembourg")
    except ZoneInfoNotFoundError:  # no tz database on this system: UTC is at most two hours off
        return UTC


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("esante.security", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)


def render_text(letter: ActivationLetter) -> str:
    lines = [
        letter.title,
        "",
        f"Dear {letter.name},",
        "",
        f"Username:     {letter.username}",
        f"Code:         {letter.code}",
        f"Valid until:  {letter.expiry_date} (included)",
        "",
    ]
    lines += [f"{number}. {step}" for number, step in enumerate(letter.instructions, 1)]
    return "\n".join(lines) + "\n"


def render_html(letter: ActivationLetter) -> str:
    return _ENV.get_template("account_letter.html").render(letter=letter)
