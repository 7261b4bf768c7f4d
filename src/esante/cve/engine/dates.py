"""Date arithmetic of the CDSi logic specification (chapter 3, CALCDT-1..6).

Supporting data express ages and intervals as text such as ``6 weeks - 4 days`` or ``10 months + 4 weeks``.
The CDC rules differ from ``dateutil.relativedelta`` on impossible dates: 31 January + 1 month is not clamped to
28/29 February but moves forward to 1 March (CALCDT-5). The components are applied in a fixed order: years, then
months, then weeks and days (CALCDT-6). This module is written against those rules and nothing else.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

__all__ = [
    "MAX_DATE",
    "MIN_DATE",
    "Duration",
    "add_duration",
    "later",
    "parse_cdsi_date",
    "parse_duration",
    "season_at",
]

#: The "assumed value if empty" dates of the specification's attribute tables.
MIN_DATE = date(1900, 1, 1)
MAX_DATE = date(2999, 12, 31)

_ONE_DAY = timedelta(days=1)
_TERM = re.compile(r"([+-]?)\s*(\d+)\s*(year|month|week|day)s?\b", re.IGNORECASE)
_EMPTY = {"", "n/a", "na", "none", "-"}


class DurationError(ValueError):
    """A supporting-data age or interval that is not of the form ``N unit [± N unit ...]``."""


@dataclass(frozen=True, slots=True)
class Duration:
    """A calendar duration kept in its parts, since years/months and days do not commute (CALCDT-6)."""

    years: int = 0
    months: int = 0
    days: int = 0  # weeks are folded into days: CALCDT-3 adds "the total days"

    def __str__(self) -> str:
        parts = []
        for value, unit in ((self.years, "year"), (self.months, "month"), (self.days, "day")):
            if value:
                parts.append(f"{value:+d} {unit}{'s' if abs(value) != 1 else ''}")
        return " ".join(parts) or "0 days"


def parse_duration(text: str | None) -> Duration | None:
    """``"12 months - 4 days"`` → Duration(months=12, days=-4); empty or ``n/a`` → None (no value).

    Raises DurationError for text that is neither empty nor a sum of ``N unit`` terms, so a typo in a schedule
    fails at load time rather than silently meaning "no constraint".
    """
    if text is None:
        return None
    cleaned = text.strip()
    if cleaned.lower() in _EMPTY:
        return None
    years = months = days = 0
    position = 0
    matched = False
    for match in _TERM.finditer(cleaned):
        between = cleaned[position : match.start()].strip()
        if between:
            raise DurationError(f"unrecognised duration {text!r}")
        sign = -1 if match.group(1) == "-" else 1
        amount = sign * int(match.group(2))
        unit = match.group(3).lower()
        if unit == "year":
            years += amount
        elif unit == "month":
            months += amount
        elif unit == "week":
            days += 7 * amount
        else:
            days += amount
        position = match.end()
        matched = True
    if not matched or cleaned[position:].strip():
        raise DurationError(f"unrecognised duration {text!r}")
    return Duration(years, months, days)


def add_duration(start: date, duration: Duration) -> date:
    """``start + duration`` per CALCDT-1..6.

    Years (CALCDT-1) and months (CALCDT-2) move the year/month while holding the day; a day that does not exist
    in the target month moves forward to the first of the next month (CALCDT-5); weeks and days are then added
    as a count of days (CALCDT-3/4), in that order (CALCDT-6).
    """
    total_months = start.year * 12 + (start.month - 1) + duration.years * 12 + duration.months
    year, month0 = divmod(total_months, 12)
    month = month0 + 1
    day = start.day
    if day > calendar.monthrange(year, month)[1]:
        # CALCDT-5: not a real date -> first day of the next month.
        year, month, day = (year + 1, 1, 1) if month == 12 else (year, month + 1, 1)
    shifted = date(year, month, day)
    return shifted + timedelta(days=duration.days)


def later(a: date | None, b: date | None) -> date | None:
    """The later of two dates either of which may be empty (an empty date does not take part, section 7.5)."""
    if a is None or b is None:
        return b if a is None else a
    return max(a, b)


def season_at(start: date | None, end: date | None, on: date) -> tuple[date | None, date | None]:
    """The seasonal recommendation that applies on ``on``: the data's window recurring every year.

    Supporting data carry one season as absolute dates (``20251001``-``20260331``). The window applied is that
    one shifted by a whole number of years - the one in progress on ``on`` (start <= on <= end; with no end
    date, the one that started last), or else the next one to start. So assessed in December 2026 the data's
    2025-26 window gives 1 Oct 2026 - 31 Mar 2027, and assessed in May 2023 it gives 1 Oct 2023 - 31 Mar 2024.

    Shifting uses CALCDT-1 and -5 (29 February of a common year is 1 March). The end date is inclusive (table
    7-10: "assessment date <= the seasonal recommendation end date"), so it is the day *after* the end that is
    shifted, then one day taken off: a season to 28 February 2026 runs to 29 February 2028, and one to 29
    February 2024 to 28 February 2025 - the season keeps its calendar length and never gains or loses a day
    that the calendar does not. With no start date there is nothing to shift: the dates are returned as given.
    """
    if start is None or (end is not None and end < start):
        return start, end

    def shifted(years: int) -> tuple[date, date | None]:
        by = Duration(years=years)
        new_end = None if end is None else add_duration(end + _ONE_DAY, by) - _ONE_DAY
        return add_duration(start, by), new_end

    # The last window to start on or before ``on`` (starts grow with the shift: a year is >= 365 days).
    years = on.year - start.year
    if add_duration(start, Duration(years=years)) > on:
        years -= 1
    window_start, window_end = shifted(years)
    if window_end is None or on <= window_end:
        return window_start, window_end  # in progress (ends grow with the shift too: none later is)
    return shifted(years + 1)  # none in progress: the next one to start


def parse_cdsi_date(text: str | None) -> date | None:
    """Supporting-data dates: ``YYYYMMDD`` (effective/cessation), ``MM/DD/YYYY`` (immunity) or ISO."""
    if text is None:
        return None
    value = text.strip()
    if value.lower() in _EMPTY:
        return None
    if re.fullmatch(r"\d{8}", value):
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    if re.fullmatch(r"\d{1,2}/\d{1,2}/\d{4}", value):
        month, day, year = (int(p) for p in value.split("/"))
        return date(year, month, day)
    return date.fromisoformat(value)
