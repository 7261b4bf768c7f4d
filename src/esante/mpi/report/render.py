"""The report's files: ``report.html`` (tables + inline SVG charts, no script) and ``report.csv``.

The CSV is ONE file of ``metric,breakdown,value`` rows (:func:`esante.mpi.report.figures.rows`): easy to load in a
spreadsheet or to compare between years; an undefined value (a median with nothing closed, a rate with nothing
read) is an empty cell.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from jinja2 import Environment, select_autoescape
from markupsafe import Markup

from esante.mpi.report import charts
from esante.mpi.report.figures import MONTHS, SERIES_LABELS, Figures, Value, rows

HTML_NAME = "report.html"
CSV_NAME = "report.csv"

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Identity-vigilance report {{ f.year }}</title>
<style>
body { font-family: sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .5em 0; } th, td { padding: .25em .8em; border: 1px solid #ccc; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } .charts svg { margin: .5em 1em .5em 0; }
.note { color: #555; font-size: .9em; }
</style>
</head>
<body>
<h1>Identity-vigilance report {{ f.year }}</h1>
<p class="note">Master patient index, calendar year {{ f.year }} (UTC). Produced {{ f.generated }}.
Identity counts are those of the register at the end of the year; the other figures count what was recorded during
the year.</p>

<h2>Identities at the end of {{ f.year }}</h2>
<div class="charts">{{ charts.levels }}</div>
<table>
<tr><th>domain</th>{% for level in f.identities_by_level %}<th>{{ level }}</th>{% endfor %}<th>total</th></tr>
{% for domain, levels in f.identities_by_domain.items() %}
<tr><td>{{ domain }}</td>{% for n in levels.values() %}<td class="n">{{ fmt(n) }}</td>{% endfor %}
<td class="n">{{ fmt(levels.values() | sum) }}</td></tr>
{% endfor %}
<tr><th>all domains</th>{% for n in f.identities_by_level.values() %}<td class="n">{{ fmt(n) }}</td>{% endfor %}
<td class="n">{{ fmt(f.identities_total) }}</td></tr>
</table>
<p>Merged (inactive) identities: {{ fmt(f.merged_identities) }}.
Patients without an identity level: {{ fmt(f.untagged_patients) }}.</p>

<h2>Identity decisions</h2>
<div class="charts">{{ charts.decisions }}</div>
<table>
<tr><th>decision</th><th>total</th><th>by the engine</th><th>by agents</th><th>other</th></tr>
{% for activity, n in f.decisions.items() %}{% set k = f.decisions_by_agent_kind[activity] %}
<tr><td>{{ activity }}</td><td class="n">{{ fmt(n) }}</td><td class="n">{{ fmt(k.engine) }}</td>
<td class="n">{{ fmt(k.agent) }}</td><td class="n">{{ fmt(k.other) }}</td></tr>
{% endfor %}
</table>
<p>Identity-vigilance agents who decided: {{ fmt(f.deciding_agents) }}.</p>

<h2>Review queue</h2>
<table>
<tr><th>reason</th><th>opened</th><th>closed</th><th>median review time (hours)</th></tr>
{% for reason, n in f.reviews_opened.items() %}
<tr><td>{{ reason }}</td><td class="n">{{ fmt(n) }}</td><td class="n">{{ fmt(f.reviews_closed.get(reason, 0)) }}</td>
<td class="n">{{ fmt(f.median_review_hours_by_reason.get(reason)) }}</td></tr>
{% endfor %}
<tr><th>all reasons</th><td class="n">{{ fmt(f.reviews_opened_total) }}</td>
<td class="n">{{ fmt(f.reviews_closed_total) }}</td><td class="n">{{ fmt(f.median_review_hours) }}</td></tr>
</table>
<p>Closed as: {% for outcome, n in f.reviews_closed_by_outcome.items() %}
{{ outcome }} {{ fmt(n) }}{{ ", " if not loop.last }}{% endfor %}.
Still open at the end of the year: {{ fmt(f.reviews_open_at_end) }}.</p>

<h2>Trait quality</h2>
<table>
<tr><td>certified imports</td><td class="n">{{ fmt(f.imports) }}</td></tr>
<tr><td>lines read</td><td class="n">{{ fmt(f.import_lines_read) }}</td></tr>
<tr><td>lines rejected</td><td class="n">{{ fmt(f.import_lines_rejected) }}</td></tr>
<tr><td>rejection rate</td><td class="n">{{ pct(f.rejection_rate) }}</td></tr>
<tr><td>identity-feed writes refused (HTTP 400)</td><td class="n">{{ fmt(f.refused_identity_writes) }}</td></tr>
</table>

<h2>Month by month</h2>
<div class="charts">{{ charts.monthly }}</div>
<table>
<tr><th></th>{% for m in months %}<th>{{ m }}</th>{% endfor %}</tr>
{% for name, counts in f.monthly.items() %}
<tr><td>{{ labels.get(name, name) }}</td>{% for n in counts %}<td class="n">{{ fmt(n) }}</td>{% endfor %}</tr>
{% endfor %}
</table>
</body>
</html>
"""

_ENV = Environment(autoescape=select_autoescape(default_for_string=True, default=True), trim_blocks=True)


def fmt(value: Value) -> str:
    if value is None:
        return "n/a"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f} %"


def render_charts(figures: Figures) -> dict[str, Markup]:
    """The report's three charts, as markup safe to place in the page (our own SVG, labels escaped)."""
    levels = charts.bar_chart(
        f"Identities by level, end of {figures.year}",
        list(figures.identities_by_level),
        list(figures.identities_by_level.values()),
    )
    decisions = charts.bar_chart(
        f"Identity decisions in {figures.year}", list(figures.decisions), list(figures.decisions.values())
    )
    series = {SERIES_LABELS.get(name, name): counts for name, counts in figures.monthly.items()}
    monthly = charts.line_chart(f"Month by month, {figures.year}", MONTHS, series)
    return {"levels": Markup(levels), "decisions": Markup(decisions), "monthly": Markup(monthly)}


def render_html(figures: Figures) -> str:
    template = _ENV.from_string(_TEMPLATE)
    return template.render(
        f=figures, charts=render_charts(figures), months=MONTHS, labels=SERIES_LABELS, fmt=fmt, pct=pct
    )


def render_csv(figures: Figures) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["metric", "breakdown", "value"])
    writer.writerows((metric, breakdown, _cell(value)) for metric, breakdown, value in rows(figures))
    return out.getvalue()


def _cell(value: Value) -> str:
    """CSV value: integers as they are, fractions to 6 decimals, an undefined value empty."""
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else f"{value:.6f}".rstrip("0").rstrip(".")


def write_report(figures: Figures, out_dir: Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.csv`` into ``out_dir`` (created if needed; earlier files replaced)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    html, table = out_dir / HTML_NAME, out_dir / CSV_NAME
    html.write_text(render_html(figures), encoding="utf-8")
    table.write_text(render_csv(figures), encoding="utf-8")
    return html, table
