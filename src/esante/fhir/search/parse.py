"""Parsing of FHIR search parameters (https://hl7.org/fhir/R4/search.html) into a :class:`SearchRequest`.

The parser validates everything against the definitions registry and turns each parameter occurrence into a
condition of :mod:`esante.fhir.search.compile` (AND between occurrences, OR between comma-separated values).

* Unknown or unsupported parameters: ignored and recorded in ``SearchRequest.ignored`` (lenient, the default),
  or a 400 naming them (``strict``; ``Prefer: handling=strict``).
* Malformed values, unknown modifiers or prefixes, a modifier that does not fit the parameter type, a chain on
  a non-reference parameter, ``_sort`` on an unknown parameter, a non-integer ``_count``: always a 400 naming
  the parameter.
* ``_total``: ``accurate`` by default — a COUNT runs only when the page does not already show the end of the
  result set (a first page with fewer matches than ``_count`` needs no COUNT). ``estimate`` uses the
  PostgreSQL planner's row estimate (never below what the page proves), an exact COUNT on SQLite.
* ``_format`` and ``_pretty`` are the HTTP layer's business: accepted and passed through in ``link_params``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from esante.fhir.definitions import Registry, SearchParamDef
from esante.fhir.errors import FhirError, bad_request, not_supported
from esante.fhir.search.compile import (
    FALSE,
    TRUE,
    AnyCond,
    ChainCond,
    ColumnCond,
    CompositeCond,
    Cond,
    HasCond,
    HierarchyCond,
    IndexCond,
    MissingCond,
    Pred,
    SortKey,
    and_preds,
    or_preds,
)
from esante.fhir.search.values import (
    ValueError400,
    date_pred,
    number_pred,
    of_type_pred,
    quantity_pred,
    split_escaped,
    string_pred,
    system_code_pred,
    token_hierarchy_pred,
    token_text_pred,
    unescape,
    uri_pred,
)
from esante.fhir.values import parse_reference

TOTAL_MODES = ("none", "estimate", "accurate")
SUMMARY_MODES = ("true", "text", "data", "count", "false")
MAX_INT = 2**31 - 1
MAX_ITERATE = 4
"""How many ``:iterate`` levels of _include/_revinclude are followed at most."""

INDEXED_TYPES = ("string", "token", "date", "number", "quantity", "reference", "uri")
TYPE_MODIFIERS: dict[str, frozenset[str]] = {
    "string": frozenset({"exact", "contains", "missing"}),
    "token": frozenset({"text", "not", "above", "below", "in", "not-in", "of-type", "missing"}),
    "reference": frozenset({"identifier", "above", "below", "missing"}),
    "date": frozenset({"missing"}),
    "number": frozenset({"missing"}),
    "quantity": frozenset({"missing"}),
    "uri": frozenset({"above", "below", "missing"}),
    "composite": frozenset({"missing"}),
}
KNOWN_MODIFIERS = frozenset().union(*TYPE_MODIFIERS.values()) | {"type", "iterate", "recurse"}
PASSTHROUGH = frozenset({"_format", "_pretty"})
UNSUPPORTED = frozenset({"_text", "_content", "_query", "_list", "_filter", "_containedType"})


@dataclass(frozen=True)
class Include:
    """``_include=Source:param[:Target]`` / ``_revinclude=...`` (``source_type``/``param`` None for ``*``)."""

    source_type: str | None
    param: str | None
    target_type: str | None
    iterate: bool
    reverse: bool


@dataclass
class SearchRequest:
    """A validated search, ready for :func:`esante.fhir.search.execute.execute_search`."""

    resource_type: str | None
    res_types: tuple[str, ...] | None  # restriction of r.res_type (None: every type, system search)
    filters: list[Cond] = field(default_factory=list)
    sort: list[SortKey] = field(default_factory=list)
    count: int = 20
    offset: int = 0
    total_mode: str = "accurate"
    summary: str | None = None
    elements: list[str] | None = None
    includes: list[Include] = field(default_factory=list)
    link_params: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    base_url: str | None = None

    @property
    def revincludes(self) -> list[Include]:
        return [inc for inc in self.includes if inc.reverse]


class _Unknown(Exception):
    """The parameter (or a chained part of it) is not known for the searched type(s)."""


def _bad(name: str, message: str) -> FhirError:
    return bad_request(f"Invalid search parameter '{name}': {message}", expression=name)


def _parse_int(name: str, value: str, minimum: int = 0, maximum: int | None = MAX_INT) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise _bad(name, f"expected an integer, got {value!r}") from None
    if number < minimum:
        raise _bad(name, f"must be >= {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise _bad(name, f"must be <= {maximum}, got {number}")
    return number


def parse_search(
    resource_type: str | None,
    query: Sequence[tuple[str, str]],
    registry: Registry,
    *,
    strict: bool = False,
    default_count: int = 20,
    max_count: int = 1000,
    base_url: str | None = None,
) -> SearchRequest:
    """Validate ``query`` (decoded name/value pairs, in order) for a search on ``resource_type``.

    ``resource_type`` None is a system-level search (``_type`` restricts it; only parameters common to every
    searched type apply)."""
    return _Parser(registry, strict=strict, base_url=base_url).parse(
        resource_type, query, default_count=default_count, max_count=max_count
    )


class _Parser:
    def __init__(self, registry: Registry, *, strict: bool, base_url: str | None) -> None:
        self.registry = registry
        self.strict = strict
        self.base_url = base_url.rstrip("/") if base_url else None

    # ------------------------------------------------------------------------------------------ top level

    def parse(
        self,
        resource_type: str | None,
        query: Sequence[tuple[str, str]],
        *,
        default_count: int,
        max_count: int,
    ) -> SearchRequest:
        reg = self.registry
        if resource_type is not None and not reg.is_resource_type(resource_type):
            raise bad_request(f"Unknown resource type '{resource_type}'")
        restriction: tuple[str, ...] | None = (resource_type,) if resource_type else None
        link: list[tuple[str, str]] = []
        if resource_type is None:
            for name, value in query:
                if name == "_type":
                    types = [t.strip() for t in value.split(",") if t.strip()]
                    for t in types:
                        if not reg.is_resource_type(t):
                            raise _bad("_type", f"unknown resource type {t!r}")
                    restriction = tuple(dict.fromkeys((restriction or ()) + tuple(types)))
                    link.append((name, value))
        res_types = restriction if restriction is not None else reg.resource_types
        request = SearchRequest(resource_type, restriction, count=default_count, base_url=self.base_url)
        total_explicit = False
        count_text: str | None = None
        for name, value in query:
            if "\x00" in name or "\x00" in value:
                raise _bad(name.replace("\x00", ""), "NUL characters are not allowed")
            base, _, modifier = name.partition(":")
            if name == "_type" and resource_type is None:
                continue
            if base in PASSTHROUGH:
                link.append((name, value))
                continue
            if name == "_count":
                request.count = min(_parse_int(name, value, maximum=None), max_count)
                count_text = str(request.count)
                continue
            if name == "_offset":
                request.offset = _parse_int(name, value)
                continue
            if name == "_total":
                if value not in TOTAL_MODES:
                    raise _bad(name, f"expected one of {', '.join(TOTAL_MODES)}, got {value!r}")
                request.total_mode = value
                total_explicit = True
                link.append((name, value))
                continue
            if name == "_summary":
                if value not in SUMMARY_MODES:
                    raise _bad(name, f"expected one of {', '.join(SUMMARY_MODES)}, got {value!r}")
                request.summary = value
                link.append((name, value))
                continue
            if name == "_elements":
                elements = [e.strip() for e in value.split(",") if e.strip()]
                request.elements = (request.elements or []) + elements
                link.append((name, value))
                continue
            if name == "_sort":
                request.sort = self._parse_sort(res_types, value)
                link.append((name, value))
                continue
            if base in ("_include", "_revinclude"):
                if modifier not in ("", "iterate", "recurse"):
                    raise _bad(name, f"unknown modifier {modifier!r}")
                include = self._parse_include(name, value, bool(modifier), base == "_revinclude")
                request.includes.append(include)
                link.append((name, value))
                continue
            if base == "_contained":
                if value != "false":
                    raise not_supported(f"Search parameter '{name}' is not supported")
                continue
            if not value:
                continue  # an empty parameter value is ignored (FHIR search §3.1.1.4)
            try:
                cond = self._param(res_types, name, value)
            except _Unknown as unknown:
                message = str(unknown) or f"Unknown search parameter '{name}'"
                if self.strict:
                    raise bad_request(message, expression=name) from None
                request.ignored.append(name)
                continue
            if cond is not None:
                request.filters.append(cond)
                link.append((name, value))
        if request.summary == "count":
            request.count = 0
            count_text = "0"
            if not total_explicit or request.total_mode == "none":
                request.total_mode = "accurate"
        if count_text is not None:
            link.append(("_count", count_text))
        request.link_params = link
        return request

    # --------------------------------------------------------------------------------------- parameters

    def _defs(self, res_types: tuple[str, ...], code: str, name: str) -> SearchParamDef:
        """The definition of ``code`` shared by every type of ``res_types`` (same search type)."""
        defs = [self.registry.get(t, code) for t in res_types]
        first = defs[0]
        if first is None or any(d is None or d.type != first.type for d in defs):
            raise _Unknown(f"Unknown search parameter '{name}'")
        if any(d is not None and d.components != first.components for d in defs):
            raise _Unknown(f"Search parameter '{name}' differs between the searched types")
        return first

    def _param(self, res_types: tuple[str, ...], name: str, value: str) -> Cond | None:
        if name.startswith("_has:") or name == "_has":
            return self._has(res_types, name, value)
        if "." in name:
            return self._chain(res_types, name, value)
        code, _, modifier_text = name.partition(":")
        modifier = modifier_text or None
        if code in UNSUPPORTED:
            raise _Unknown(f"Search parameter '{name}' is not supported")
        if code == "_id":
            return self._id(name, modifier, value)
        if code == "_lastUpdated":
            return self._last_updated(name, modifier, value)
        spd = self._defs(res_types, code, name)
        if spd.expression is None or (spd.type not in INDEXED_TYPES and spd.type != "composite"):
            raise _Unknown(f"Search parameter '{name}' of type {spd.type} is not supported")
        if modifier is not None and modifier not in TYPE_MODIFIERS[spd.type]:
            if spd.type == "reference" and self.registry.is_resource_type(modifier):
                if spd.targets and modifier not in spd.targets:
                    raise _bad(name, f"{modifier} is not a target type of '{code}'")
            elif modifier in KNOWN_MODIFIERS:
                raise _bad(name, f"modifier ':{modifier}' does not apply to a {spd.type} parameter")
            else:
                raise _bad(name, f"unknown modifier ':{modifier}'")
        if modifier in ("in", "not-in"):
            raise not_supported(f"Modifier ':{modifier}' of search parameter '{name}' is not supported")
        values = [v for v in split_escaped(value, ",") if v != ""]
        if not values:
            return None
        if modifier == "missing":
            return self._missing(res_types, name, spd, values)
        try:
            if spd.type == "composite":
                return self._composite(res_types, code, spd, values)
            param = code
            negate = False
            kind = spd.type
            if spd.type == "string":
                preds = [string_pred(v, modifier) for v in values]
            elif spd.type == "token":
                if modifier == "of-type":
                    param = f"{code}:of-type"
                    preds = [of_type_pred(v) for v in values]
                elif modifier == "text":
                    preds = [token_text_pred(v) for v in values]
                elif modifier in ("above", "below"):
                    preds = [token_hierarchy_pred(v, modifier) for v in values]
                else:
                    negate = modifier == "not"
                    preds = [system_code_pred(v) for v in values]
            elif spd.type == "reference":
                if modifier in ("above", "below"):
                    return self._hierarchy(res_types, name, code, spd, values, modifier == "below")
                preds = [self._reference_pred(v, modifier, spd) for v in values]
            elif spd.type == "date":
                preds = [date_pred(v) for v in values]
            elif spd.type == "number":
                preds = [number_pred(v) for v in values]
            elif spd.type == "quantity":
                preds = [quantity_pred(v) for v in values]
            else:
                preds = [uri_pred(v, modifier) for v in values]
        except ValueError400 as exc:
            raise _bad(name, str(exc)) from None
        return IndexCond(kind, res_types, param, or_preds(preds), negate)

    def _missing(self, res_types: tuple[str, ...], name: str, spd: SearchParamDef, values: list[str]) -> Cond:
        if len(values) != 1 or values[0] not in ("true", "false"):
            raise _bad(name, f":missing expects true or false, got {','.join(values)!r}")
        missing = values[0] == "true"
        if spd.type == "composite":
            if not spd.components or spd.components[0][0] not in INDEXED_TYPES:
                raise _Unknown(f"Search parameter '{name}' is not supported")
            return MissingCond(spd.components[0][0], res_types, f"{spd.code}$0", missing)
        return MissingCond(spd.type, res_types, spd.code, missing)

    def _id(self, name: str, modifier: str | None, value: str) -> Cond | None:
        values = [unescape(v) for v in split_escaped(value, ",") if v != ""]
        if modifier == "missing":
            if values not in (["true"], ["false"]):
                raise _bad(name, ":missing expects true or false")
            return ColumnCond(FALSE if values == ["true"] else TRUE)
        if modifier not in (None, "not"):
            raise _bad(name, f"modifier ':{modifier}' does not apply to _id")
        if not values:
            return None
        op = "NOT IN" if modifier == "not" else "IN"
        return ColumnCond(Pred(f"{{x}}.res_id {op} ({', '.join('?' * len(values))})", tuple(values)))

    def _last_updated(self, name: str, modifier: str | None, value: str) -> Cond | None:
        values = [v for v in split_escaped(value, ",") if v != ""]
        if modifier == "missing":
            if values not in (["true"], ["false"]):
                raise _bad(name, ":missing expects true or false")
            return ColumnCond(FALSE if values == ["true"] else TRUE)
        if modifier is not None:
            raise _bad(name, f"modifier ':{modifier}' does not apply to _lastUpdated")
        if not values:
            return None
        try:
            preds = [date_pred(v, "{x}.last_updated", "{x}.last_updated") for v in values]
        except ValueError400 as exc:
            raise _bad(name, str(exc)) from None
        return ColumnCond(or_preds(preds))

    def _reference_pred(self, value: str, modifier: str | None, spd: SearchParamDef) -> Pred:
        if modifier == "identifier":
            return system_code_pred(value, "ident_system", "ident_value")
        text = unescape(value)
        type_restriction = modifier if modifier is not None else None
        if self.base_url and text.startswith(self.base_url + "/"):
            text = text[len(self.base_url) + 1 :]
        if "/" not in text and ":" not in text and "|" not in text:
            if type_restriction is not None:
                return Pred("{x}.target_id = ? AND {x}.target_type = ?", (text, type_restriction))
            return Pred("{x}.target_id = ?", (text,))
        if "://" in text or text.startswith("urn:"):
            url, _, canonical_version = text.partition("|")
            _rtype, _rid, hist_version, absolute = parse_reference(url)
            target = absolute or url
            if canonical_version:
                return Pred("{x}.url = ? AND {x}.target_version = ?", (target, canonical_version))
            if hist_version:
                return Pred("{x}.url = ? AND {x}.target_version = ?", (target, hist_version))
            return Pred("{x}.url = ?", (target,))
        rtype, rid, version, _absolute = parse_reference(text)
        if rtype is None or rid is None or not self.registry.is_resource_type(rtype):
            raise ValueError400(f"malformed reference {text!r}")
        if type_restriction is not None and rtype != type_restriction:
            raise ValueError400(f"reference {text!r} is not a {type_restriction}")
        pred = Pred("{x}.target_id = ? AND {x}.target_type = ?", (rid, rtype))
        if self.base_url:  # a relative reference, or an absolute one to this server
            ours = f"{self.base_url}/{rtype}/{rid}"
            pred = and_preds(pred, Pred("{x}.url IS NULL OR {x}.url = ?", (ours,)))
        if version is not None:
            pred = and_preds(pred, Pred("{x}.target_version = ?", (version,)))
        return pred

    def _hierarchy(
        self, res_types: tuple[str, ...], name: str, code: str, spd: SearchParamDef, values: list[str], below: bool
    ) -> Cond:
        """``:above`` / ``:below`` on a reference: X and its ancestors / descendants in the target's hierarchy."""
        parts: list[Cond] = []
        for value in values:
            text = unescape(value)
            if self.base_url and text.startswith(self.base_url + "/"):
                text = text[len(self.base_url) + 1 :]
            if "://" in text or text.startswith("urn:") or "|" in text:
                raise ValueError400(f"a hierarchy can only be followed from a resource of this server, got {text!r}")
            rtype, rid = (None, text) if "/" not in text else text.split("/", 1)
            if not rid or "/" in rid or (rtype is not None and not self.registry.is_resource_type(rtype)):
                raise ValueError400(f"malformed reference {text!r}")
            candidates = [rtype] if rtype is not None else list(spd.targets or ())
            if rtype is not None and spd.targets and rtype not in spd.targets:
                raise ValueError400(f"{rtype} is not a target type of '{code}'")
            found = [(t, link) for t in candidates if (link := self._hierarchy_link(res_types, code, spd, t))]
            if not found:
                kinds = " or ".join(candidates) or "its target"
                raise ValueError400(f"'{code}' points at {kinds}, which forms no hierarchy (:above/:below need one)")
            if len(found) > 1:
                raise ValueError400(f"'{text}' is ambiguous: write the reference as Type/id")
            target, link = found[0]
            parts.append(HierarchyCond(res_types, code, target, link, rid, below, self.base_url))
        return parts[0] if len(parts) == 1 else AnyCond(tuple(parts))

    def _hierarchy_link(self, res_types: tuple[str, ...], code: str, spd: SearchParamDef, target: str) -> str | None:
        """The reference parameter of ``target`` that builds its hierarchy: the searched parameter itself when it
        is circular (``Location?partof:below``), else the target's part-of / parent parameter, else its only
        circular parameter."""
        if res_types == (target,) and spd.targets == (target,):
            return code
        params = self.registry.params(target).values()
        circular = [p.code for p in params if p.type == "reference" and p.targets == (target,)]
        for usual in ("partof", "part-of", "parent"):
            if usual in circular:
                return usual
        return circular[0] if len(circular) == 1 else None

    def _composite(
        self, res_types: tuple[str, ...], code: str, spd: SearchParamDef, values: list[str]
    ) -> CompositeCond:
        kinds = tuple(ctype for ctype, _expr in spd.components)
        if not kinds or any(k not in INDEXED_TYPES for k in kinds):
            raise _Unknown(f"Composite search parameter '{code}' is not supported")
        alternatives: list[tuple[Pred, ...]] = []
        for value in values:
            parts = split_escaped(value, "$")
            if len(parts) != len(kinds):
                raise ValueError400(f"expected {len(kinds)} $-separated components, got {value!r}")
            preds: list[Pred] = []
            for kind, part in zip(kinds, parts, strict=True):
                if kind == "string":
                    preds.append(string_pred(part, None))
                elif kind == "token":
                    preds.append(system_code_pred(part))
                elif kind == "date":
                    preds.append(date_pred(part))
                elif kind == "number":
                    preds.append(number_pred(part))
                elif kind == "quantity":
                    preds.append(quantity_pred(part))
                elif kind == "reference":
                    preds.append(self._reference_pred(part, None, spd))
                else:
                    preds.append(uri_pred(part, None))
            alternatives.append(tuple(preds))
        return CompositeCond(res_types, code, kinds, tuple(alternatives))

    # ----------------------------------------------------------------------------------- chains and _has

    def _chain(self, res_types: tuple[str, ...], name: str, value: str) -> Cond | None:
        head, _, rest = name.partition(".")
        code, _, modifier = head.partition(":")
        if not rest:
            raise _bad(name, "empty chained parameter")
        spd = self._defs(res_types, code, name)
        if spd.type != "reference":
            raise _bad(name, f"chaining needs a reference parameter, '{code}' is a {spd.type}")
        targets: list[str] = []
        for t in res_types:
            tdef = self.registry.get(t, code)
            for target in tdef.targets if tdef else ():
                if target not in targets and self.registry.is_resource_type(target):
                    targets.append(target)
        if not targets:  # a reference to Resource (any type)
            targets = list(self.registry.resource_types)
        if modifier:
            if not self.registry.is_resource_type(modifier):
                raise _bad(name, f"a chain modifier must be a resource type, got ':{modifier}'")
            if modifier not in targets:
                raise _bad(name, f"{modifier} is not a target type of '{code}'")
            targets = [modifier]
        next_code = rest.split(".", 1)[0].split(":", 1)[0]
        groups: dict[tuple[object, ...], list[str]] = {}
        for target in targets:
            tdef = self.registry.get(target, next_code)
            if tdef is None and next_code not in ("_id", "_lastUpdated") and not next_code.startswith("_has"):
                continue
            key: tuple[object, ...] = (tdef.type, tdef.components) if tdef else (next_code,)
            groups.setdefault(key, []).append(target)
        if not groups:
            raise _Unknown(f"Unknown search parameter '{name}': no target of '{code}' has '{next_code}'")
        parts: list[Cond] = []
        for group in groups.values():
            inner = self._param(tuple(group), rest, value)
            if inner is None:
                return None
            parts.append(ChainCond(res_types, code, tuple(group), inner))
        return parts[0] if len(parts) == 1 else AnyCond(tuple(parts))

    def _has(self, res_types: tuple[str, ...], name: str, value: str) -> Cond | None:
        pieces = name.split(":", 3)
        if len(pieces) != 4 or not all(pieces[1:]):
            raise _bad(name, "expected _has:Type:reference-param:search-param")
        _, src_type, ref_param, rest = pieces
        if not self.registry.is_resource_type(src_type):
            raise _bad(name, f"unknown resource type {src_type!r}")
        ref_def = self.registry.get(src_type, ref_param)
        if ref_def is None:
            raise _bad(name, f"{src_type} has no search parameter '{ref_param}'")
        if ref_def.type != "reference":
            raise _bad(name, f"'{ref_param}' of {src_type} is not a reference parameter")
        inner = self._param((src_type,), rest, value)
        if inner is None:
            return None
        return HasCond(src_type, ref_param, inner)

    # --------------------------------------------------------------------------------- _sort, _include

    def _parse_sort(self, res_types: tuple[str, ...], value: str) -> list[SortKey]:
        keys: list[SortKey] = []
        for raw in value.split(","):
            item = raw.strip()
            if not item:
                continue
            descending = item.startswith("-")
            code = item[1:] if descending else item
            if code == "_id":
                keys.append(SortKey(code, descending, "column", "res_id"))
                continue
            if code == "_lastUpdated":
                keys.append(SortKey(code, descending, "column", "last_updated"))
                continue
            try:
                spd = self._defs(res_types, code, code)
            except _Unknown:
                raise _bad("_sort", f"unknown search parameter {code!r}") from None
            column = {
                "string": "{x}.value_norm",
                "token": "{x}.code",
                "date": "{x}.hi" if descending else "{x}.lo",
                "number": "{x}.value",
                "quantity": "{x}.value",
                "reference": "COALESCE({x}.target_type || '/' || {x}.target_id, {x}.url, {x}.ident_value)",
                "uri": "{x}.value",
            }.get(spd.type)
            if column is None or spd.expression is None or code in UNSUPPORTED:
                raise _bad("_sort", f"cannot sort on {code!r} (a {spd.type} parameter)")
            keys.append(SortKey(code, descending, spd.type, column, (code,)))
        return keys

    def _parse_include(self, name: str, value: str, iterate: bool, reverse: bool) -> Include:
        if value == "*":
            return Include(None, None, None, iterate, reverse)
        parts = value.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise _bad(name, f"expected SourceType:param[:TargetType], got {value!r}")
        source, param = parts[0], parts[1]
        target = parts[2] if len(parts) == 3 else None
        if not self.registry.is_resource_type(source):
            raise _bad(name, f"unknown resource type {source!r}")
        if param == "*":
            return Include(source, None, target, iterate, reverse)
        spd = self.registry.get(source, param)
        if spd is None:
            raise _bad(name, f"{source} has no search parameter {param!r}")
        if spd.type != "reference":
            raise _bad(name, f"'{param}' of {source} is not a reference parameter")
        if target is not None:
            if not self.registry.is_resource_type(target):
                raise _bad(name, f"unknown resource type {target!r}")
            if spd.targets and target not in spd.targets:
                raise _bad(name, f"{target} is not a target type of {source}:{param}")
        return Include(source, param, target, iterate, reverse)
