"""The CNS provider code ("code prestataire"): the number the Caisse nationale de santé gives each provider.

Format ``NNNNNN-NN``: six digits, a dash, two digits. Physicians' codes begin with 9 (PLATFORM.md). The rule
behind the last two digits is not published in our sources, so only the format is checked (no check digit is
computed): a typo that keeps the format passes, and the import relies on the Ministry's authorisation number as
the professional's key. Typed with a space or without the dash (``90123401``), the code is normalised to the dashed
form, which is what the directory stores under ``urn:oid:1.3.182.4.7``.
"""

from __future__ import annotations

CNS_PROVIDER_SYSTEM = "urn:oid:1.3.182.4.7"
PHYSICIAN_PREFIX = "9"


class CnsProviderCodeError(ValueError):
    """Not a CNS provider code; the message says why."""


def parse_cns_provider_code(text: str) -> str:
    """The normalised code ``NNNNNN-NN``, or :class:`CnsProviderCodeError` naming the problem."""
    value = text.strip().replace(" ", "")
    digits = value.replace("-", "", 1) if len(value) == 9 and value[6] == "-" else value
    if not digits.isascii() or not digits.isdigit():
        raise CnsProviderCodeError(f"a CNS provider code is NNNNNN-NN (8 digits), not {text.strip()!r}")
    if len(digits) != 8:
        raise CnsProviderCodeError(f"a CNS provider code has 8 digits (NNNNNN-NN), not {len(digits)}")
    return f"{digits[:6]}-{digits[6:]}"


def is_valid_cns_provider_code(text: str) -> bool:
    try:
        parse_cns_provider_code(text)
    except CnsProviderCodeError:
        return False
    return True


def is_physician_code(code: str) -> bool:
    """A (normalised) code of the physicians' range."""
    return code.startswith(PHYSICIAN_PREFIX)
