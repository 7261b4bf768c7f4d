"""The values a resource contributes to the search index tables (one list per table in db/schema.py).

Produced by :mod:`esante.fhir.indexing` from the search-parameter definitions, written by the store in the same
transaction as the resource. ``grp`` is 0 for plain parameters; composite parameter components are stored as
``param = "<code>$<i>"`` rows that share a ``grp`` >= 1 per composite base element.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# (param, grp, value_norm, value_exact)
StringRow = tuple[str, int, str, str]
# (param, grp, system, code, text_norm)
TokenRow = tuple[str, int, str | None, str | None, str | None]
# (param, grp, lo, hi) — inclusive bounds, microseconds since the epoch, UTC
DateRow = tuple[str, int, int, int]
# (param, grp, value)
NumberRow = tuple[str, int, float]
# (param, grp, value, system, code, unit)
QuantityRow = tuple[str, int, float, str | None, str | None, str | None]
# (param, grp, target_type, target_id, target_version, url, ident_system, ident_value)
ReferenceRow = tuple[str, int, str | None, str | None, str | None, str | None, str | None, str | None]
# (param, grp, value)
UriRow = tuple[str, int, str]


@dataclass
class IndexRows:
    """Everything one resource version contributes to the index tables."""

    string: list[StringRow] = field(default_factory=list)
    token: list[TokenRow] = field(default_factory=list)
    date: list[DateRow] = field(default_factory=list)
    number: list[NumberRow] = field(default_factory=list)
    quantity: list[QuantityRow] = field(default_factory=list)
    reference: list[ReferenceRow] = field(default_factory=list)
    uri: list[UriRow] = field(default_factory=list)
