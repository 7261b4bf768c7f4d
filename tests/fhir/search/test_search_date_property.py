"""Property: date search in SQL equals an in-memory oracle written from the prefix rules.

Stored values are dateTimes of random precision or Periods (open at either end); search values are random
dates with random prefixes. The oracle states the rules independently of the compiler:
target [lo, hi] vs search [slo, shi] (inclusive microseconds) —
eq: lo >= slo and hi <= shi; ne: not eq; gt: hi > shi; lt: lo < slo; ge: gt or eq; le: lt or eq;
sa: lo > shi; eb: hi < slo; ap: overlap with [slo - w, shi + w], w = max(1 day, distance(now, search)/10).
A resource matches when any of its values matches.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from search_kit import SearchKit

from esante.db.engine import Database

MIN = -(2**62)
MAX = 2**62
DAY = 86_400_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PREFIXES = ["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"]


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


@st.composite
def dates(draw: Any) -> tuple[str, int, int]:
    """(text, lo, hi) of a date of random precision."""
    year = draw(st.integers(1995, 2035))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, 28))
    precision = draw(st.sampled_from(["year", "month", "day", "second"]))
    if precision == "year":
        start, end = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
        return f"{year:04d}", micros(start), micros(end) - 1
    if precision == "month":
        start = datetime(year, month, 1, tzinfo=UTC)
        end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
        return f"{year:04d}-{month:02d}", micros(start), micros(end) - 1
    if precision == "day":
        start = datetime(year, month, day, tzinfo=UTC)
        return f"{year:04d}-{month:02d}-{day:02d}", micros(start), micros(start) + DAY - 1
    hour, minute, second = draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
    start = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}Z"
    return text, micros(start), micros(start) + 1_000_000 - 1


@st.composite
def stored_values(draw: Any) -> tuple[dict[str, Any], tuple[int, int]]:
    """An Observation effective[x] element and its range."""
    if draw(st.booleans()):
        text, lo, hi = draw(dates())
        return {"effectiveDateTime": text}, (lo, hi)
    first, second = draw(dates()), draw(dates())
    if first[1] > second[1]:
        first, second = second, first
    shape = draw(st.sampled_from(["both", "start", "end"]))
    period: dict[str, str] = {}
    lo, hi = MIN, MAX
    if shape in ("both", "start"):
        period["start"] = first[0]
        lo = first[1]
    if shape in ("both", "end"):
        period["end"] = second[0]
        hi = second[2]
    return {"effectivePeriod": period}, (lo, hi)


def oracle(prefix: str, lo: int, hi: int, slo: int, shi: int, now: int) -> bool:
    eq = lo >= slo and hi <= shi
    match prefix or "eq":
        case "eq":
            return eq
        case "ne":
            return not eq
        case "gt":
            return hi > shi
        case "lt":
            return lo < slo
        case "ge":
            return hi > shi or eq
        case "le":
            return lo < slo or eq
        case "sa":
            return lo > shi
        case "eb":
            return hi < slo
        case _:
            distance = 0 if slo <= now <= shi else min(abs(now - slo), abs(now - shi))
            width = max(DAY, distance // 10)
            return lo <= shi + width and hi >= slo - width


async def _reset(database: Database) -> None:
    async with database.transaction() as conn:
        for table in ("resource", "idx_string", "idx_token", "idx_date", "idx_number", "idx_quantity"):
            await conn.execute(f"DELETE FROM {table}")
        for table in ("idx_reference", "idx_uri"):
            await conn.execute(f"DELETE FROM {table}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    stored=st.lists(stored_values(), min_size=1, max_size=8),
    searches=st.lists(st.tuples(st.sampled_from(PREFIXES), dates()), min_size=1, max_size=6),
)
async def test_date_search_matches_oracle(
    kit: SearchKit,
    stored: list[tuple[dict[str, Any], tuple[int, int]]],
    searches: list[tuple[str, tuple[str, int, int]]],
) -> None:
    await _reset(kit.database)
    await kit.add(
        *[
            {"resourceType": "Observation", "id": f"o{i}", "status": "final", "code": {"text": "x"}, **element}
            for i, (element, _range) in enumerate(stored)
        ]
    )
    for prefix, (text, slo, shi) in searches:
        now = time.time_ns() // 1000
        expected = {f"o{i}" for i, (_el, (lo, hi)) in enumerate(stored) if oracle(prefix, lo, hi, slo, shi, now)}
        assert await kit.idset("Observation", [("date", prefix + text)]) == expected, (prefix, text, stored)
    # AND of two searches is the intersection
    (p1, (t1, lo1, hi1)), (p2, (t2, lo2, hi2)) = searches[0], searches[-1]
    now = time.time_ns() // 1000
    both = {
        f"o{i}"
        for i, (_el, (lo, hi)) in enumerate(stored)
        if oracle(p1, lo, hi, lo1, hi1, now) and oracle(p2, lo, hi, lo2, hi2, now)
    }
    assert await kit.idset("Observation", [("date", p1 + t1), ("date", p2 + t2)]) == both
