"""Normalisation of search values, shared by index extraction and the search compiler.

* Strings: :func:`normalize_string` (accent- and case-insensitive, whitespace collapsed).
* Dates: :func:`parse_date_range` turns a (partial) FHIR date/dateTime/instant into the inclusive range of
  microseconds since the Unix epoch (UTC) it denotes. A value **without a timezone is taken as UTC** (FHIR
  leaves it to the server; this server has no local zone).
* Numbers: :func:`number_range` gives a value and its implicit-precision range ("100" → [99.5, 100.5)).
* References: :func:`parse_reference` splits relative, absolute, versioned, canonical and urn references.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from decimal import Decimal, InvalidOperation

MIN_MICROS = -(2**62)
MAX_MICROS = 2**62

MAX_STRING = 255

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAY = 86_400_000_000

_DATE_RE = re.compile(
    r"(?P<y>\d{4})"
    r"(?:-(?P<mo>\d{2})"
    r"(?:-(?P<d>\d{2})"
    r"(?:T(?P<h>\d{2}):(?P<mi>\d{2})"
    r"(?::(?P<s>\d{2})(?:\.(?P<f>\d+))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?"
    r")?)?)?"
)
_WS_RE = re.compile(r"\s+")


def normalize_string(text: str) -> str:
    """Accent/case-folded form used for string search: NFKD, combining marks dropped, casefolded, whitespace
    collapsed, stripped, cut to 255 characters (é→e, ß→ss, "  A  b " → "a b")."""
    if text.isascii():  # fast path: NFKD is the identity and casefold is lower() on ASCII
        text = _WS_RE.sub(" ", text.lower()).strip()
        return text[:MAX_STRING].rstrip() if len(text) > MAX_STRING else text
    text = unicodedata.normalize("NFKD", text).casefold()
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _WS_RE.sub(" ", text).strip()
    if len(text) > MAX_STRING:
        text = text[:MAX_STRING].rstrip()
    return text


def _days_to_micros(ordinal: int) -> int:
    return (ordinal - _EPOCH_ORDINAL) * _DAY


def parse_date_range(text: str) -> tuple[int, int]:
    """Inclusive ``(lo, hi)`` in microseconds since the epoch (UTC) covered by a FHIR date/dateTime/instant.

    Partial values cover their whole precision ("2020" → the year 2020, "2020-03-01T10:00" → that minute,
    "…T10:00:00.5" → that tenth of a second). No timezone → UTC. Raises ``ValueError`` when malformed.
    """
    if not isinstance(text, str):
        raise ValueError(f"date must be a string, not {type(text).__name__}")
    m = _DATE_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"malformed date/dateTime {text!r} (expected YYYY[-MM[-DD[Thh:mm[:ss[.fff]][Z|±hh:mm]]]])")
    year = int(m["y"])
    if year == 0:
        raise ValueError(f"invalid year in {text!r}")
    month = int(m["mo"]) if m["mo"] is not None else None
    if month is not None and not 1 <= month <= 12:
        raise ValueError(f"invalid month {month:02d} in {text!r}")
    try:
        if month is None:
            start = date(year, 1, 1).toordinal()
            return _days_to_micros(start), _days_to_micros(date(year, 12, 31).toordinal() + 1) - 1
        if m["d"] is None:
            start = date(year, month, 1).toordinal()
            end = date(year, 12, 31).toordinal() + 1 if month == 12 else date(year, month + 1, 1).toordinal()
            return _days_to_micros(start), _days_to_micros(end) - 1
        day_ordinal = date(year, month, int(m["d"])).toordinal()
    except ValueError as exc:
        raise ValueError(f"invalid date {text!r}: {exc}") from None
    if m["h"] is None:
        lo = _days_to_micros(day_ordinal)
        return lo, lo + _DAY - 1
    hour, minute = int(m["h"]), int(m["mi"])
    if hour > 23 or minute > 59:
        raise ValueError(f"invalid time in {text!r}")
    lo = _days_to_micros(day_ordinal) + (hour * 3600 + minute * 60) * 1_000_000
    if m["s"] is None:
        width = 60_000_000
    else:
        second = int(m["s"])
        if second > 59:
            raise ValueError(f"invalid seconds in {text!r}")
        lo += second * 1_000_000
        frac = m["f"]
        if frac is None:
            width = 1_000_000
        else:
            digits = frac[:6]
            lo += int(digits.ljust(6, "0"))
            width = 10 ** (6 - len(digits))
    tz = m["tz"]
    if tz and tz != "Z":
        tz_h, tz_m = int(tz[1:3]), int(tz[4:6])
        if tz_h > 14 or tz_m > 59:
            raise ValueError(f"invalid timezone offset in {text!r}")
        offset = (tz_h * 3600 + tz_m * 60) * 1_000_000
        lo = lo - offset if tz[0] == "+" else lo + offset
    return lo, lo + width - 1


def number_range(text: str) -> tuple[float, float, float]:
    """``(value, lo, hi)``: the number and the range its written precision implies (half a unit of the last
    significant digit either side: "100" → (100, 99.5, 100.5), "100.0" → ±0.05, "1e2" → ±50)."""
    if not isinstance(text, str):
        text = str(text)
    stripped = text.strip()
    if not stripped or stripped != text or "_" in text:
        raise ValueError(f"malformed number {text!r}")
    try:
        dec = Decimal(stripped)
    except InvalidOperation:
        raise ValueError(f"malformed number {text!r}") from None
    if not dec.is_finite():
        raise ValueError(f"number must be finite, got {text!r}")
    exponent = dec.as_tuple().exponent
    assert isinstance(exponent, int)
    half = Decimal(5).scaleb(exponent - 1)
    return float(dec), float(dec - half), float(dec + half)


_TYPE_RE = re.compile(r"[A-Z][A-Za-z]{1,63}")
_ID_RE = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def _split_type_id(path: str) -> tuple[str | None, str | None, str | None]:
    """(type, id, version) from the tail of a path: ``…/Type/id`` or ``…/Type/id/_history/v``."""
    parts = [p for p in path.split("/") if p]
    version = None
    if len(parts) >= 4 and parts[-2] == "_history":
        version = parts[-1]
        parts = parts[:-2]
    if len(parts) >= 2 and _TYPE_RE.fullmatch(parts[-2]) and _ID_RE.fullmatch(parts[-1]):
        return parts[-2], parts[-1], version
    return None, None, None


def parse_reference(ref: str, base_url: str | None = None) -> tuple[str | None, str | None, str | None, str | None]:
    """Split a reference into ``(type, id, version, absolute_url)``.

    * ``"Patient/123"`` → ("Patient", "123", None, None) — or the URL joined to ``base_url`` when given;
    * ``"Patient/123/_history/2"`` → version "2";
    * ``"http://x/fhir/Patient/123"`` → ("Patient", "123", None, "http://x/fhir/Patient/123");
    * ``"urn:uuid:…"`` / ``"urn:oid:…"`` → (None, None, None, the urn);
    * ``"#p1"`` (contained) → all None;
    * canonical ``"http://x/ValueSet/vs|1.0"`` → url without the version (type/id parsed when present).
    """
    if not ref or ref.startswith("#"):
        return None, None, None, None
    ref = ref.strip()
    if ref.startswith("urn:"):
        return None, None, None, ref
    url = ref.split("|", 1)[0]
    if "://" in url:
        rtype, rid, version = _split_type_id(url.split("?", 1)[0].split("#", 1)[0])
        if version is not None:
            url = url[: url.rindex("/_history/")]
        return rtype, rid, version, url
    rtype, rid, version = _split_type_id(url)
    if rtype is None:
        return None, None, None, None
    absolute = f"{base_url.rstrip('/')}/{rtype}/{rid}" if base_url else None
    return rtype, rid, version, absolute
