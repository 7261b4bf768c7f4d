"""Search-index extraction: a resource → the rows it contributes to the ``idx_*`` tables (:class:`IndexRows`).

For every search parameter of the resource's type (except ``_id`` and ``_lastUpdated``, answered from the
``resource`` table, and parameters without an expression such as ``_text``/``_content``/``_query``) the
(compiled) FHIRPath expression is evaluated and each result node is turned into rows according to the
parameter type *and* the node's FHIR type:

* **string** — string-like primitives; ``HumanName`` → family, each given, prefix, suffix, text;
  ``Address`` → each line, city, district, state, postalCode, country, text (one row each).
  ``value_norm`` = :func:`normalize_string`, ``value_exact`` = the original text (cut to 255).
* **token** — ``Coding`` (system, code, normalised display); ``CodeableConcept`` (each coding, plus its
  text as a row with system/code None); ``Identifier`` (system, value, normalised type.text) plus, for each
  type coding, a ``"<code>:of-type"`` row (system = type coding system, code = ``"<type code>|<value>"``);
  ``ContactPoint`` → system = ``ContactPoint.system`` (phone, email, …), code = value; code/string/id/uri
  primitives → (None, value); boolean → ``"true"``/``"false"``. Primitive ``code`` values are stored without
  their implicit (bound) code system.
* **reference** — ``Reference`` (type/id/version from the reference, the absolute URL when absolute, the
  ``identifier`` as ident_system/ident_value; a Reference with only an identifier still gives a row;
  ``Reference.type`` fills target_type when the reference string does not tell it). canonical/uri values →
  url without ``|version`` (the version goes to target_version), target_type/target_id when the URL ends in
  ``Type/id``. A resource node (``Bundle.entry[0].resource``) → its type and id. Contained (``#x``) skipped.
* **date** — date/dateTime/instant → :func:`parse_date_range`; ``Period`` → (start lo | MIN_MICROS, end hi |
  MAX_MICROS); ``Timing`` → the overall min/max of its events and ``repeat.boundsPeriod``. Others ignored.
* **number** — integer/decimal values; Quantity value; ``Range`` → low and high as two rows.
* **quantity** — Quantity and its profiles (Age, Duration, Count, Distance, SimpleQuantity): (value, system,
  code, unit); ``Money`` → (value, None, currency, None); ``Range`` → low and high as two rows; bare numbers →
  (value, None, None, None).
* **uri** — uri/url/canonical/oid/uuid strings (cut to 1024).
* **composite** — each base node gets its own ``grp`` (1, 2, … per parameter); component ``i`` (0-based, in
  definition order) is evaluated relative to the base node and written as typed rows with param
  ``"<code>$<i>"`` and that grp.

Rows are deduplicated. Odd data never raises: unusable values are skipped and counted
(:func:`extraction_stats`).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from functools import cache
from typing import Any

from esante.fhir.definitions import Registry, get_registry
from esante.fhir.fhirpath import CompiledExpression, Node, compile_expression, guess_type
from esante.fhir.index_rows import IndexRows
from esante.fhir.values import MAX_MICROS, MIN_MICROS, normalize_string, parse_date_range, parse_reference

log = logging.getLogger(__name__)

MAX_VALUE = 255
MAX_URL = 1024
SKIPPED_PARAMS = frozenset({"_id", "_lastUpdated"})

_STRING_TYPES = frozenset(
    {"string", "markdown", "code", "id", "uri", "url", "canonical", "oid", "uuid", "xhtml", "base64Binary"}
)
_URI_TYPES = frozenset({"uri", "url", "canonical", "oid", "uuid"})
_DATE_TYPES = frozenset({"date", "dateTime", "instant"})
_QUANTITY_TYPES = frozenset({"Quantity", "Age", "Duration", "Count", "Distance", "SimpleQuantity", "MoneyQuantity"})
_HUMAN_NAME_PARTS = ("family", "given", "prefix", "suffix", "text")
_ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")

_stats: Counter[str] = Counter()


def extraction_stats() -> dict[str, int]:
    """Counters of values skipped during extraction since start-up (by reason)."""
    return dict(_stats)


class _Skip(Exception):
    """A value that cannot be indexed (counted, never propagated)."""


def _cut(text: Any, limit: int = MAX_VALUE) -> str | None:
    if text is None:
        return None
    if not isinstance(text, str):
        if isinstance(text, bool):
            text = "true" if text else "false"
        elif isinstance(text, int | float):
            text = str(text)
        else:
            raise _Skip("not a string")
    return text[:limit]


def _norm(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    normed = normalize_string(text)
    return normed or None


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Skip("not a number")
    return float(value)


def _node_type(node: Node) -> str:
    return node.type or guess_type(node.value)


class _Rows:
    """Accumulates deduplicated rows (dicts keep insertion order)."""

    __slots__ = ("date", "number", "quantity", "reference", "string", "token", "uri")

    def __init__(self) -> None:
        self.string: dict[Any, None] = {}
        self.token: dict[Any, None] = {}
        self.date: dict[Any, None] = {}
        self.number: dict[Any, None] = {}
        self.quantity: dict[Any, None] = {}
        self.reference: dict[Any, None] = {}
        self.uri: dict[Any, None] = {}

    # -- string

    def add_string(self, param: str, grp: int, node: Node) -> None:
        ntype = _node_type(node)
        value = node.value
        if ntype == "HumanName" or ntype == "Address":
            if not isinstance(value, dict):
                raise _Skip("bad complex value")
            for part in _HUMAN_NAME_PARTS if ntype == "HumanName" else _ADDRESS_PARTS:
                item = value.get(part)
                for text in item if isinstance(item, list) else (item,):
                    if isinstance(text, str):
                        self._string(param, grp, text)
            return
        if isinstance(value, str):
            self._string(param, grp, value)
            return
        raise _Skip(f"string param on {ntype or type(value).__name__}")

    def _string(self, param: str, grp: int, text: str) -> None:
        normed = normalize_string(text)
        if normed:
            self.string[(param, grp, normed, text[:MAX_VALUE])] = None

    # -- token

    def add_token(self, param: str, grp: int, node: Node) -> None:
        ntype = _node_type(node)
        value = node.value
        if isinstance(value, dict):
            if ntype == "CodeableConcept":
                for coding in value.get("coding") or ():
                    if isinstance(coding, dict):
                        self._coding(param, grp, coding)
                text = _norm(value.get("text"))
                if text:
                    self.token[(param, grp, None, None, text[:MAX_VALUE])] = None
            elif ntype == "Coding":
                self._coding(param, grp, value)
            elif ntype == "Identifier":
                self._identifier(param, grp, value)
            elif ntype == "ContactPoint":
                if value.get("value") is not None:
                    self.token[(param, grp, _cut(value.get("system")), _cut(value.get("value")), None)] = None
            elif ntype == "Reference" and isinstance(value.get("identifier"), dict):
                self._identifier(param, grp, value["identifier"])
            else:
                raise _Skip(f"token param on {ntype}")
            return
        if isinstance(value, bool):
            self.token[(param, grp, None, "true" if value else "false", None)] = None
        elif isinstance(value, str | int | float):
            self.token[(param, grp, None, _cut(value), None)] = None
        else:
            raise _Skip("token value")

    def _coding(self, param: str, grp: int, coding: dict[str, Any]) -> None:
        system, code, display = coding.get("system"), coding.get("code"), _norm(coding.get("display"))
        if system is None and code is None and display is None:
            return
        self.token[(param, grp, _cut(system), _cut(code), display[:MAX_VALUE] if display else None)] = None

    def _identifier(self, param: str, grp: int, ident: dict[str, Any]) -> None:
        system, value = ident.get("system"), ident.get("value")
        id_type = ident.get("type")
        type_text = _norm(id_type.get("text")) if isinstance(id_type, dict) else None
        if system is not None or value is not None:
            self.token[(param, grp, _cut(system), _cut(value), type_text[:MAX_VALUE] if type_text else None)] = None
        if value is not None and isinstance(id_type, dict):
            for coding in id_type.get("coding") or ():
                if isinstance(coding, dict) and coding.get("code") is not None:
                    code = f"{coding['code']}|{value}"
                    self.token[(f"{param}:of-type", grp, _cut(coding.get("system")), _cut(code), None)] = None

    # -- reference

    def add_reference(self, param: str, grp: int, node: Node) -> None:
        ntype = _node_type(node)
        value = node.value
        if isinstance(value, str):
            self._canonical(param, grp, value)
            return
        if not isinstance(value, dict):
            raise _Skip("reference value")
        if "resourceType" in value and ntype == value["resourceType"]:
            rid = value.get("id")
            if isinstance(rid, str):
                self.reference[(param, grp, _cut(ntype, 64), _cut(rid), None, None, None, None)] = None
            return
        ref = value.get("reference")
        rtype = rid = version = url = None
        if isinstance(ref, str):
            if ref.startswith("#"):
                return
            rtype, rid, version, url = parse_reference(ref)
        elif ref is not None:
            raise _Skip("reference string")
        ident = value.get("identifier")
        ident_system = ident_value = None
        if isinstance(ident, dict):
            ident_system, ident_value = ident.get("system"), ident.get("value")
        if rtype is None and isinstance(value.get("type"), str):
            rtype = value["type"]
        if rid is None and url is None and ident_system is None and ident_value is None:
            return
        self.reference[
            (
                param,
                grp,
                _cut(rtype, 64),
                _cut(rid),
                _cut(version, 64),
                _cut(url, MAX_URL),
                _cut(ident_system),
                _cut(ident_value),
            )
        ] = None

    def _canonical(self, param: str, grp: int, text: str) -> None:
        if not text or text.startswith("#"):
            return
        url, _, version = text.partition("|")
        rtype, rid, _, _ = parse_reference(url)
        if "://" not in url and not url.startswith("urn:"):
            # a relative "Type/id" in a uri-typed element
            self.reference[(param, grp, _cut(rtype, 64), _cut(rid), _cut(version or None, 64), None, None, None)] = None
            return
        self.reference[
            (param, grp, _cut(rtype, 64), _cut(rid), _cut(version or None, 64), url[:MAX_URL], None, None)
        ] = None

    # -- date

    def add_date(self, param: str, grp: int, node: Node) -> None:
        ntype = _node_type(node)
        value = node.value
        if isinstance(value, str):
            if ntype in _DATE_TYPES or ntype == "":
                lo, hi = parse_date_range(value)
                self.date[(param, grp, lo, hi)] = None
                return
            raise _Skip(f"date param on {ntype}")
        if not isinstance(value, dict):
            raise _Skip("date value")
        if ntype == "Period":
            bounds = _period(value)
            if bounds is not None:
                self.date[(param, grp, *bounds)] = None
        elif ntype == "Timing":
            lows: list[int] = []
            highs: list[int] = []
            for event in value.get("event") or ():
                lo, hi = parse_date_range(event)
                lows.append(lo)
                highs.append(hi)
            repeat = value.get("repeat")
            if isinstance(repeat, dict) and isinstance(repeat.get("boundsPeriod"), dict):
                bounds = _period(repeat["boundsPeriod"])
                if bounds is not None:
                    lows.append(bounds[0])
                    highs.append(bounds[1])
            if lows:
                self.date[(param, grp, min(lows), max(highs))] = None
        else:
            raise _Skip(f"date param on {ntype}")

    # -- number / quantity

    def add_number(self, param: str, grp: int, node: Node) -> None:
        value = node.value
        if isinstance(value, dict):
            ntype = _node_type(node)
            if ntype == "Range":
                for end in ("low", "high"):
                    bound = value.get(end)
                    if isinstance(bound, dict) and bound.get("value") is not None:
                        self.number[(param, grp, _number(bound["value"]))] = None
                return
            if value.get("value") is not None:
                self.number[(param, grp, _number(value["value"]))] = None
            return
        self.number[(param, grp, _number(value))] = None

    def add_quantity(self, param: str, grp: int, node: Node) -> None:
        value = node.value
        ntype = _node_type(node)
        if not isinstance(value, dict):
            self.quantity[(param, grp, _number(value), None, None, None)] = None
            return
        if ntype == "Range":
            for end in ("low", "high"):
                bound = value.get(end)
                if isinstance(bound, dict):
                    self._quantity(param, grp, bound)
        elif ntype == "Money":
            if value.get("value") is not None:
                currency = _cut(value.get("currency"))
                self.quantity[(param, grp, _number(value["value"]), None, currency, None)] = None
        elif ntype in _QUANTITY_TYPES:
            self._quantity(param, grp, value)
        else:
            raise _Skip(f"quantity param on {ntype}")

    def _quantity(self, param: str, grp: int, q: dict[str, Any]) -> None:
        if q.get("value") is None:
            return
        self.quantity[
            (param, grp, _number(q["value"]), _cut(q.get("system")), _cut(q.get("code")), _cut(q.get("unit")))
        ] = None

    # -- uri

    def add_uri(self, param: str, grp: int, node: Node) -> None:
        value = node.value
        if not isinstance(value, str):
            raise _Skip("uri value")
        if value:
            self.uri[(param, grp, value[:MAX_URL])] = None

    def result(self) -> IndexRows:
        return IndexRows(
            string=list(self.string),
            token=list(self.token),
            date=list(self.date),
            number=list(self.number),
            quantity=list(self.quantity),
            reference=list(self.reference),
            uri=list(self.uri),
        )


def _period(value: dict[str, Any]) -> tuple[int, int] | None:
    start, end = value.get("start"), value.get("end")
    if start is None and end is None:
        return None
    lo = parse_date_range(start)[0] if start is not None else MIN_MICROS
    hi = parse_date_range(end)[1] if end is not None else MAX_MICROS
    return lo, hi


_ADDERS = {
    "string": _Rows.add_string,
    "token": _Rows.add_token,
    "reference": _Rows.add_reference,
    "date": _Rows.add_date,
    "number": _Rows.add_number,
    "quantity": _Rows.add_quantity,
    "uri": _Rows.add_uri,
}

# (code, param type, expression, components: ((type, expression), ...), guards: each must meet the resource's
# top-level elements, or None to always evaluate)
_Plan = tuple[
    tuple[str, str, CompiledExpression, tuple[tuple[str, CompiledExpression], ...], tuple[frozenset[str], ...] | None],
    ...,
]

_BRANCH_ROOT = re.compile(r"^\(*\s*(?:[A-Z][A-Za-z]*)\.([a-z][A-Za-z0-9]*)")
_CHOICE_KEY = re.compile(r"^([a-z][A-Za-z0-9]*?)[A-Z][A-Za-z0-9]*$")


# operators that can produce a value from an absent element
_VALUE_FROM_NOTHING = (" and ", " or ", "exists", "empty", "not()", "!=", "=", "iif", "count()", "%")


def _without_where(branch: str) -> str:
    """The branch with its ``where(...)`` filters removed (they only narrow what is already there)."""
    out, i = [], 0
    while i < len(branch):
        if branch.startswith("where(", i):
            depth, i = 1, i + len("where(")
            while i < len(branch) and depth:
                depth += {"(": 1, ")": -1}.get(branch[i], 0)
                i += 1
            continue
        out.append(branch[i])
        i += 1
    return "".join(out)


def _top_level_branches(expression: str) -> list[str]:
    """Split on ``|`` outside parentheses and quotes."""
    branches, depth, quote, start = [], 0, False, 0
    for i, char in enumerate(expression):
        if char == "'":
            quote = not quote
        elif not quote and char == "(":
            depth += 1
        elif not quote and char == ")":
            depth -= 1
        elif not quote and depth == 0 and char == "|":
            branches.append(expression[start:i].strip())
            start = i + 1
    branches.append(expression[start:].strip())
    return branches


def root_guard(expression: str, resource_type: str) -> frozenset[str] | None:
    """The top-level elements an expression can read, or None when that cannot be told from its text.

    Most resources fill a handful of their type's elements: skipping expressions whose root element is absent
    avoids evaluating most of the ~40 expressions per type (measured in bench/fhirpath_extraction.py).
    """
    roots: set[str] = set()
    for branch in _top_level_branches(expression):
        if any(op in _without_where(branch) for op in _VALUE_FROM_NOTHING):
            return None  # e.g. "Patient.deceased.exists() and ..." yields false when deceased is absent
        match = _BRANCH_ROOT.match(branch)
        head = branch.lstrip("( ").split(".", 1)[0]
        if match is None or head not in (resource_type, "Resource", "DomainResource"):
            return None
        roots.add(match.group(1))
    return frozenset(roots)


_RELATIVE_ROOT = re.compile(r"^\(*\s*([a-z][A-Za-z0-9]*)\s*(?:\.as\(\s*([A-Za-z]+)\s*\)|\s+as\s+([A-Za-z]+))?")


def relative_guard(expression: str) -> frozenset[str] | None:
    """Like :func:`root_guard` for an expression relative to the resource (a composite's component).

    ``value.as(Quantity)`` needs ``valueQuantity``: the typed key is required, not just any ``value[x]``.
    """
    roots: set[str] = set()
    for branch in _top_level_branches(expression):
        if any(op in _without_where(branch) for op in _VALUE_FROM_NOTHING):
            return None
        match = _RELATIVE_ROOT.match(branch)
        if match is None:
            return None
        name, as_type = match.group(1), match.group(2) or match.group(3)
        roots.add(name + as_type[0].upper() + as_type[1:] if as_type else name)
    return frozenset(roots)


def _guards(expression: str, resource_type: str, components: tuple[str, ...]) -> tuple[frozenset[str], ...] | None:
    """Guards that must ALL meet the present elements; None: always evaluate."""
    if components and expression.strip() == resource_type:
        # a composite on the resource itself (Observation code-value-*) needs every component present
        found = [relative_guard(component) for component in components]
        guards = tuple(g for g in found if g is not None)
        return guards or None
    guard = root_guard(expression, resource_type)
    return (guard,) if guard is not None else None


def present_elements(resource: dict[str, Any]) -> set[str]:
    """Top-level element names present, choice elements also under their base name (``valueQuantity`` → ``value``)."""
    names = set(resource)
    for key in resource:
        match = _CHOICE_KEY.match(key)
        if match:
            names.add(match.group(1))
    return names


Compiler = Callable[[str], CompiledExpression]


@cache
def _plan(registry: Registry, resource_type: str, compiler: Compiler = compile_expression) -> _Plan:
    plan = []
    for code, sp in registry.params(resource_type).items():
        if code in SKIPPED_PARAMS or sp.expression is None:
            continue
        if sp.type == "composite":
            comps = tuple((ctype, compiler(cexpr)) for ctype, cexpr in sp.components)
            if not comps or any(ctype not in _ADDERS for ctype, _ in comps):
                continue
            guards = _guards(sp.expression, resource_type, tuple(cexpr for _, cexpr in sp.components))
            plan.append((code, sp.type, compiler(sp.expression), comps, guards))
        elif sp.type in _ADDERS:
            plan.append((code, sp.type, compiler(sp.expression), (), _guards(sp.expression, resource_type, ())))
    return tuple(plan)


def extract_index_rows(resource: dict[str, Any], registry: Registry | None = None) -> IndexRows:
    """Every index row ``resource`` contributes (none for an unknown type); never raises on odd data.

    AuditEvents (one or more per audited request) take a path walk that gives the same rows without FHIRPath
    (:mod:`esante.fhir.audit_event_index`), when it applies.
    """
    registry = registry or get_registry()
    if isinstance(resource, dict) and resource.get("resourceType") == "AuditEvent":
        from esante.fhir.audit_event_index import audit_event_index_rows

        rows = audit_event_index_rows(resource, registry)
        if rows is not None:
            return rows
    return extract_with(resource, registry, compile_expression)


def extract_params(resource: dict[str, Any], codes: frozenset[str], registry: Registry | None = None) -> IndexRows:
    """The index rows of the parameters ``codes`` only (the audit trail asks for the Patient compartment's)."""
    return extract_with(resource, registry or get_registry(), compile_expression, codes)


def extract_with(
    resource: dict[str, Any], registry: Registry, compiler: Compiler, only: frozenset[str] | None = None
) -> IndexRows:
    """:func:`extract_index_rows` with another expression compiler (the benchmark passes fhirpathpy)."""
    rtype = resource.get("resourceType") if isinstance(resource, dict) else None
    if not isinstance(rtype, str) or not registry.is_resource_type(rtype):
        return IndexRows()
    rows = _Rows()
    root = Node(resource, rtype, rtype)
    focus = [root]
    present = present_elements(resource)
    for code, ptype, expr, comps, guards in _plan(registry, rtype, compiler):
        if only is not None and code not in only:
            continue
        if guards is not None and any(guard.isdisjoint(present) for guard in guards):
            continue
        try:
            nodes = expr.evaluate(focus, root)
        except Exception as exc:  # fhirpathpy fallbacks may raise on odd data
            _stats["expression_error"] += 1
            log.debug("index %s.%s: expression failed (%s)", rtype, code, type(exc).__name__)
            continue
        if not comps:
            adder = _ADDERS[ptype]
            for node in nodes:
                _add(adder, rows, code, 0, node, rtype)
            continue
        for grp, base in enumerate(nodes, start=1):
            for i, (ctype, cexpr) in enumerate(comps):
                try:
                    parts = cexpr.evaluate([base], root)
                except Exception as exc:
                    _stats["expression_error"] += 1
                    log.debug("index %s.%s$%d: expression failed (%s)", rtype, code, i, type(exc).__name__)
                    continue
                adder = _ADDERS[ctype]
                param = f"{code}${i}"
                for node in parts:
                    _add(adder, rows, param, grp, node, rtype)
    return rows.result()


def _add(adder: Any, rows: _Rows, param: str, grp: int, node: Node, rtype: str) -> None:
    try:
        adder(rows, param, grp, node)
    except (_Skip, ValueError, TypeError, AttributeError, KeyError) as exc:
        _stats[f"skipped:{param}"] += 1
        _stats["skipped"] += 1
        log.debug("index %s.%s: value skipped (%s)", rtype, param, type(exc).__name__)  # never the value
