"""GS1 DataMatrix element strings of vaccine packs: the scanned text → GTIN, expiry, lot, serial. Pure.

A medicine pack's 2D code (EU falsified-medicines rules: AI 01, 17, 10, 21; sometimes 11 or a national code of
AI 710-715) is a GS1 *element string*: application identifiers (AIs) each followed by their value. AIs of a
predefined length (01 = 14 digits, 17 = 6 digits, …) need no separator; a variable-length value (10 lot, 21
serial, …) ends at the GS character (ASCII 29, the FNC1 separator scanners transmit) or at the end. Accepted
input forms:

- the raw scan: an optional symbology identifier (``]d2`` DataMatrix, ``]C1`` GS1-128, ``]Q3`` QR, ``]e0``
  DataBar), an optional leading FNC1, elements separated by GS (``\\x1d``; ``␝`` U+241D, which some keyboard-wedge
  scanners type, is read as GS);
- the human-readable form ``(01)05412345000013(17)270531(10)AB12C(21)12345`` (a value must then not contain
  parentheses).

Rules applied (GS1 General Specifications): AI 01 is 14 digits whose last is the mod-10 check digit; dates are
``YYMMDD`` with ``DD = 00`` meaning the last day of the month, and the century is the one that puts the year
within -49 to +50 years of the current year (section 7.12); numeric AIs hold digits only; values use the printable
GS1 character set 82; an AI appears once; a variable-length value longer than its maximum most often means a
missing GS separator and is refused as such. Every refusal is a :class:`Gs1Error` with a stable code and a
message naming the position or the AI.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date

__all__ = [
    "AI_NAMES",
    "GS",
    "Gs1Data",
    "Gs1Error",
    "expiry_date",
    "gtin_check_digit",
    "parse_datamatrix",
    "valid_gtin",
]

GS = "\x1d"
_SYMBOLOGY = re.compile(r"^\](d2|C1|Q3|e0|d1|Q1)")
_CSET82 = re.compile(r"^[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]+$")
_HRI = re.compile(r"\((\d{2,4})\)([^()]*)")


@dataclass(frozen=True)
class _Ai:
    fixed: int | None  # predefined value length, or None (variable, ends at GS or the end)
    maximum: int
    numeric: bool
    name: str


def _fixed(length: int, name: str, numeric: bool = True) -> _Ai:
    return _Ai(length, length, numeric, name)


def _var(maximum: int, name: str, numeric: bool = False) -> _Ai:
    return _Ai(None, maximum, numeric, name)


# The AIs a medicine or vaccine pack may carry (and a few logistic ones a scanner may meet); others are refused.
_AIS: dict[str, _Ai] = {
    "00": _fixed(18, "SSCC"),
    "01": _fixed(14, "GTIN"),
    "02": _fixed(14, "GTIN of contained trade items"),
    "10": _var(20, "batch/lot number"),
    "11": _fixed(6, "production date"),
    "12": _fixed(6, "due date"),
    "13": _fixed(6, "packaging date"),
    "15": _fixed(6, "best before date"),
    "16": _fixed(6, "sell by date"),
    "17": _fixed(6, "expiration date"),
    "20": _fixed(2, "internal product variant"),
    "21": _var(20, "serial number"),
    "22": _var(20, "consumer product variant"),
    "30": _var(8, "variable count", numeric=True),
    "37": _var(8, "count of trade items", numeric=True),
    "235": _var(28, "third-party controlled serialised extension of GTIN"),
    "240": _var(30, "additional product identification"),
    "241": _var(30, "customer part number"),
    "243": _var(20, "packaging component number"),
    "250": _var(30, "secondary serial number"),
    "251": _var(30, "reference to source entity"),
    "710": _var(20, "national healthcare reimbursement number, Germany (PZN)"),
    "711": _var(20, "national healthcare reimbursement number, France (CIP)"),
    "712": _var(20, "national healthcare reimbursement number, Spain"),
    "713": _var(20, "national healthcare reimbursement number, Brazil"),
    "714": _var(20, "national healthcare reimbursement number, Portugal (AIM)"),
    "715": _var(20, "national healthcare reimbursement number, United States (NDC)"),
    "7003": _fixed(10, "expiration date and time"),
    **{str(n): _var(90 if n > 90 else 30, "company internal information") for n in range(90, 100)},
}
AI_NAMES = {ai: spec.name for ai, spec in _AIS.items()}
_DATE_AIS = frozenset({"11", "12", "13", "15", "16", "17"})


class Gs1Error(ValueError):
    """The text is not an acceptable GS1 element string; ``code`` is stable (tests, OperationOutcome details)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Gs1Data:
    """The elements of one pack's code, in the order scanned, and the ones the CVE uses."""

    elements: tuple[tuple[str, str], ...]
    gtin: str | None
    expiry: date | None
    lot: str | None
    serial: str | None

    def value(self, ai: str) -> str | None:
        for key, value in self.elements:
            if key == ai:
                return value
        return None

    @property
    def national_codes(self) -> dict[str, str]:
        """AI 710-715 values (national reimbursement numbers), by AI."""
        return {ai: value for ai, value in self.elements if ai.startswith("71")}


def gtin_check_digit(body: str) -> str:
    """The GS1 mod-10 check digit of ``body`` (the digits before it): weights 3, 1, 3, … from the right."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


def valid_gtin(gtin: str) -> bool:
    return len(gtin) == 14 and gtin.isdigit() and gtin_check_digit(gtin[:13]) == gtin[13]


def expiry_date(text: str, today: date, ai: str = "17") -> date:
    """A GS1 ``YYMMDD`` date: century by the ±50-year rule around ``today``; ``DD = 00`` is the month's last day."""
    if len(text) != 6 or not text.isdigit():
        raise Gs1Error(f"AI ({ai}) must be a date YYMMDD, got {text!r}", "gs1-date")
    yy, month, day = int(text[:2]), int(text[2:4]), int(text[4:6])
    current = today.year % 100
    century = today.year - current
    difference = yy - current
    if 51 <= difference <= 99:
        century -= 100
    elif -99 <= difference <= -50:
        century += 100
    year = century + yy
    if not 1 <= month <= 12:
        raise Gs1Error(f"AI ({ai}) has month {text[2:4]}: not a date", "gs1-date")
    last = calendar.monthrange(year, month)[1]
    if day == 0:
        day = last
    if day > last:
        raise Gs1Error(f"AI ({ai}) has day {text[4:6]} in a month of {last} days: not a date", "gs1-date")
    return date(year, month, day)


def _spec_at(text: str, position: int) -> tuple[str, _Ai]:
    for width in (2, 3, 4):
        ai = text[position : position + width]
        if len(ai) == width and ai in _AIS:
            return ai, _AIS[ai]
    shown = text[position : position + 4]
    if not shown[:2].isdigit():
        raise Gs1Error(
            f"expected an application identifier (digits) at position {position + 1}, found {shown!r}", "gs1-syntax"
        )
    raise Gs1Error(f"unknown or unsupported application identifier at position {position + 1} ({shown}…)", "gs1-ai")


def _split_raw(text: str) -> list[tuple[str, str, int]]:
    """(AI, value, position) of each element of a raw scan."""
    elements: list[tuple[str, str, int]] = []
    position = 0
    while position < len(text):
        if text[position] == GS:  # a separator after a predefined-length value, or a doubled one
            position += 1
            continue
        ai, spec = _spec_at(text, position)
        start = position + len(ai)
        if spec.fixed is not None:
            value = text[start : start + spec.fixed]
            if len(value) < spec.fixed or GS in value:
                raise Gs1Error(f"AI ({ai}) {spec.name} needs {spec.fixed} characters", "gs1-length")
            position = start + spec.fixed
        else:
            end = text.find(GS, start)
            end = len(text) if end < 0 else end
            value = text[start:end]
            if len(value) > spec.maximum:
                raise Gs1Error(
                    f"AI ({ai}) {spec.name} is longer than {spec.maximum} characters: a GS separator is missing "
                    "after it, or the code is damaged",
                    "gs1-length",
                )
            position = end
        elements.append((ai, value, start))
    return elements


def _split_hri(text: str) -> list[tuple[str, str, int]]:
    """(AI, value, position) of each element of the bracketed human-readable form."""
    elements: list[tuple[str, str, int]] = []
    position = 0
    for match in _HRI.finditer(text):
        if match.start() != position:
            break
        ai = match.group(1)
        if ai not in _AIS:
            raise Gs1Error(f"unknown or unsupported application identifier ({ai})", "gs1-ai")
        elements.append((ai, match.group(2), match.start(2)))
        position = match.end()
    if position != len(text):
        raise Gs1Error(f"unreadable text at position {position + 1} of the bracketed form", "gs1-syntax")
    return elements


def parse_datamatrix(text: str, today: date) -> Gs1Data:
    """Parse a scanned GS1 element string (see the module's docstring); ``today`` resolves the dates' century."""
    if not isinstance(text, str):
        raise Gs1Error("the GS1 DataMatrix must be text", "gs1-syntax")
    cleaned = text.strip().replace("\u241d", GS)
    cleaned = _SYMBOLOGY.sub("", cleaned)
    cleaned = cleaned.lstrip(GS).rstrip(GS)
    if not cleaned:
        raise Gs1Error("the GS1 DataMatrix is empty", "gs1-empty")
    raw = _split_hri(cleaned) if cleaned.startswith("(") else _split_raw(cleaned)
    seen: dict[str, str] = {}
    for ai, value, position in raw:
        spec = _AIS[ai]
        if ai in seen:
            raise Gs1Error(f"AI ({ai}) {spec.name} appears more than once", "gs1-duplicate")
        if not value:
            raise Gs1Error(f"AI ({ai}) {spec.name} has no value (position {position + 1})", "gs1-length")
        if spec.fixed is not None and len(value) != spec.fixed:
            raise Gs1Error(f"AI ({ai}) {spec.name} needs {spec.fixed} characters", "gs1-length")
        if len(value) > spec.maximum:
            raise Gs1Error(f"AI ({ai}) {spec.name} is longer than {spec.maximum} characters", "gs1-length")
        if spec.numeric and not value.isdigit():
            raise Gs1Error(f"AI ({ai}) {spec.name} must hold digits only", "gs1-syntax")
        if not _CSET82.match(value):
            raise Gs1Error(f"AI ({ai}) {spec.name} holds a character outside the GS1 character set", "gs1-syntax")
        seen[ai] = value
    gtin = seen.get("01")
    if gtin is not None and not valid_gtin(gtin):
        raise Gs1Error(
            f"AI (01) GTIN {gtin} has a wrong check digit (expected {gtin_check_digit(gtin[:13])})", "gs1-check-digit"
        )
    for ai in _DATE_AIS & seen.keys():
        expiry_date(seen[ai], today, ai)  # every date must be a date, not only the expiry
    expiry = expiry_date(seen["17"], today) if "17" in seen else None
    return Gs1Data(
        elements=tuple((ai, value) for ai, value, _ in raw),
        gtin=gtin,
        expiry=expiry,
        lot=seen.get("10"),
        serial=seen.get("21"),
    )
