"""The report's figures from the collected records: counts, monthly series, median, rates. Pure.

A year is a calendar year in UTC (the store's times are UTC): ``[Jan 1 00:00, next Jan 1 00:00)``. Rates and the
median are ``None`` when undefined (nothing read, nothing closed): the report shows "n/a", the CSV an empty value.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from esante.mpi.model import IdentityLevel
from esante.mpi.provenance import Activity
from esante.mpi.report.records import CLOSED_STATUSES, Decision, ImportRun, Review
from esante.mpi.review import COLLISION, SUSPECTED_DUPLICATE, UNCERTAIN_LINK

FIRST_YEAR = 1970
LEVELS = tuple(level.value for level in (IdentityLevel.CERTIFIED, IdentityLevel.VALIDATED, IdentityLevel.PROVISIONAL))
ACTIVITIES = tuple(a.value for a in Activity)
REASONS = (UNCERTAIN_LINK, COLLISION, SUSPECTED_DUPLICATE)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SERIES = ("auto-links", "reviews-opened", "reviews-closed", "merges")  # CSV metric monthly:<series>
SERIES_LABELS = {"auto-links": "auto-links", "reviews-opened": "reviews opened", "reviews-closed": "reviews closed",
                 "merges": "merges"}  # fmt: skip
_HOUR = 3_600_000_000


class YearError(ValueError):
    """A report year refused: the message says why."""


def check_year(year: int, today: datetime | None = None) -> int:
    """A year that has begun (the current year gives a year-to-date report), from 1970 on."""
    current = (today or datetime.now(UTC)).year
    if not FIRST_YEAR <= year <= current:
        raise YearError(f"year {year} is out of range: a report covers a year from {FIRST_YEAR} to {current}")
    return year


def parse_year(text: str, today: datetime | None = None) -> int:
    """The ``--year`` option: four digits or so, checked by :func:`check_year`."""
    value = text.strip()
    if not value.lstrip("-").isdigit():
        raise YearError(f"{text!r} is not a year (expected a number such as 2025)")
    return check_year(int(value), today)


def year_bounds(year: int) -> tuple[int, int]:
    """``[start, end)`` of the calendar year in microseconds since the epoch (UTC)."""
    start = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    return int(start.timestamp()) * 1_000_000, int(end.timestamp()) * 1_000_000


def month_of(micros: int) -> int:
    """0..11: the month (UTC) of a time."""
    return datetime.fromtimestamp(micros // 1_000_000, tz=UTC).month - 1


@dataclass
class Observations:
    """What :mod:`collect` read for one year: plain records, no health data.

    ``identities``: (level or None, domain system, active) → number of Patients in that state at the end of the
    year; ``decisions``/``imports``/``refused_writes`` are those recorded in the year; ``reviews`` are every review
    Task opened before the year's end (as of its end).
    """

    year: int
    identities: Counter[tuple[str | None, str, bool]] = field(default_factory=Counter)
    domain_names: dict[str, str] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    reviews: list[Review] = field(default_factory=list)
    imports: list[ImportRun] = field(default_factory=list)
    refused_writes: list[int] = field(default_factory=list)


@dataclass
class Figures:
    year: int
    generated: str  # ISO time the report was produced
    identities_by_level: dict[str, int]  # active identities at the end of the year
    identities_by_domain: dict[str, dict[str, int]]  # domain label → level → count (active)
    merged_identities: int  # inactive (merged) identities at the end of the year, all levels
    untagged_patients: int  # Patients without an identity level (not MPI identities)
    decisions: dict[str, int]  # activity → count in the year
    decisions_by_agent_kind: dict[str, dict[str, int]]  # activity → engine|agent|other → count
    deciding_agents: int  # distinct identity-vigilance agents who decided in the year
    reviews_opened: dict[str, int]  # reason → count
    reviews_closed: dict[str, int]  # reason → count
    reviews_closed_by_outcome: dict[str, int]  # completed|rejected|cancelled → count
    reviews_open_at_end: int
    median_review_hours: float | None
    median_review_hours_by_reason: dict[str, float | None]
    imports: int
    import_lines_read: int
    import_lines_rejected: int
    rejection_rate: float | None  # rejected / read over the year's certified imports
    refused_identity_writes: int  # Patient writes refused with 400 (audit trail)
    monthly: dict[str, list[int]]  # series name → 12 counts

    @property
    def identities_total(self) -> int:
        return sum(self.identities_by_level.values())

    @property
    def reviews_opened_total(self) -> int:
        return sum(self.reviews_opened.values())

    @property
    def reviews_closed_total(self) -> int:
        return sum(self.reviews_closed.values())


def median_hours(durations: Iterable[int]) -> float | None:
    values = sorted(durations)
    return round(statistics.median(values) / _HOUR, 2) if values else None


def _keyed(counter: Counter[str], keys: Iterable[str]) -> dict[str, int]:
    """The fixed keys first (zeros included: an empty year still lists them), then any unexpected ones."""
    out = {key: counter.get(key, 0) for key in keys}
    out.update({key: value for key, value in sorted(counter.items()) if key not in out})
    return out


def compute(observed: Observations, generated: datetime | None = None) -> Figures:
    start, end = year_bounds(observed.year)

    def in_year(micros: int | None) -> bool:
        return micros is not None and start <= micros < end

    levels: Counter[str] = Counter()
    by_domain: dict[str, Counter[str]] = {}
    merged = untagged = 0
    for (level, domain, active), count in observed.identities.items():
        if level is None:
            untagged += count
            continue
        if not active:
            merged += count
            continue
        levels[level] += count
        label = observed.domain_names.get(domain, domain)
        by_domain.setdefault(label, Counter())[level] += count

    decisions = [d for d in observed.decisions if in_year(d.recorded)]
    by_kind: dict[str, Counter[str]] = {}
    for d in decisions:
        by_kind.setdefault(d.activity, Counter())[d.agent_kind] += 1

    opened = [r for r in observed.reviews if in_year(r.opened)]
    closed = [r for r in observed.reviews if in_year(r.closed)]
    open_at_end = sum(1 for r in observed.reviews if r.opened < end and (r.closed is None or r.closed >= end))
    durations: dict[str, list[int]] = {}
    for r in closed:
        assert r.closed is not None
        durations.setdefault(r.reason, []).append(max(0, r.closed - r.opened))

    imports = [i for i in observed.imports if in_year(i.recorded)]
    read = sum(i.read for i in imports)
    rejected = sum(i.rejected for i in imports)

    monthly = {name: [0] * 12 for name in SERIES}
    for d in decisions:
        if d.activity == Activity.AUTO_LINK:
            monthly["auto-links"][month_of(d.recorded)] += 1
        elif d.activity == Activity.MERGE:
            monthly["merges"][month_of(d.recorded)] += 1
    for r in opened:
        monthly["reviews-opened"][month_of(r.opened)] += 1
    for r in closed:
        assert r.closed is not None
        monthly["reviews-closed"][month_of(r.closed)] += 1

    return Figures(
        year=observed.year,
        generated=(generated or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        identities_by_level=_keyed(levels, LEVELS),
        identities_by_domain={label: _keyed(by_domain[label], LEVELS) for label in sorted(by_domain)},
        merged_identities=merged,
        untagged_patients=untagged,
        decisions=_keyed(Counter(d.activity for d in decisions), ACTIVITIES),
        decisions_by_agent_kind={
            a: _keyed(by_kind.get(a, Counter()), ("engine", "agent", "other")) for a in ACTIVITIES
        },
        deciding_agents=len({d.agent for d in decisions if d.agent_kind == "agent" and d.agent}),
        reviews_opened=_keyed(Counter(r.reason for r in opened), REASONS),
        reviews_closed=_keyed(Counter(r.reason for r in closed), REASONS),
        reviews_closed_by_outcome=_keyed(Counter(str(r.outcome) for r in closed), CLOSED_STATUSES),
        reviews_open_at_end=open_at_end,
        median_review_hours=median_hours(v for values in durations.values() for v in values),
        median_review_hours_by_reason={reason: median_hours(durations.get(reason, [])) for reason in REASONS},
        imports=len(imports),
        import_lines_read=read,
        import_lines_rejected=rejected,
        rejection_rate=rejected / read if read else None,
        refused_identity_writes=sum(1 for t in observed.refused_writes if in_year(t)),
        monthly=monthly,
    )


Value = int | float | None


def rows(figures: Figures) -> list[tuple[str, str, Value]]:
    """The figures as (metric, breakdown, value) rows: the CSV, and the order of the HTML tables."""
    out: list[tuple[str, str, Value]] = [("identities", "total", figures.identities_total)]
    out += [("identities", f"level={level}", n) for level, n in figures.identities_by_level.items()]
    for domain, levels in figures.identities_by_domain.items():
        out += [("identities", f"domain={domain};level={level}", n) for level, n in levels.items()]
    out += [("merged_identities", "total", figures.merged_identities)]
    out += [("untagged_patients", "total", figures.untagged_patients)]
    out += [("decisions", f"activity={a}", n) for a, n in figures.decisions.items()]
    for activity, kinds in figures.decisions_by_agent_kind.items():
        out += [("decisions", f"activity={activity};by={kind}", n) for kind, n in kinds.items()]
    out += [("deciding_agents", "total", figures.deciding_agents)]
    out += [("reviews_opened", "total", figures.reviews_opened_total)]
    out += [("reviews_opened", f"reason={r}", n) for r, n in figures.reviews_opened.items()]
    out += [("reviews_closed", "total", figures.reviews_closed_total)]
    out += [("reviews_closed", f"reason={r}", n) for r, n in figures.reviews_closed.items()]
    out += [("reviews_closed", f"outcome={o}", n) for o, n in figures.reviews_closed_by_outcome.items()]
    out += [("reviews_open_at_year_end", "total", figures.reviews_open_at_end)]
    out += [("median_review_hours", "total", figures.median_review_hours)]
    out += [("median_review_hours", f"reason={r}", h) for r, h in figures.median_review_hours_by_reason.items()]
    out += [
        ("certified_imports", "total", figures.imports),
        ("certified_import_lines", "read", figures.import_lines_read),
        ("certified_import_lines", "rejected", figures.import_lines_rejected),
        ("rejection_rate", "certified_imports", figures.rejection_rate),
        ("refused_identity_writes", "http_400", figures.refused_identity_writes),
    ]
    for series, counts in figures.monthly.items():
        out += [(f"monthly:{series}", f"month={figures.year}-{m + 1:02d}", n) for m, n in enumerate(counts)]
    return out
