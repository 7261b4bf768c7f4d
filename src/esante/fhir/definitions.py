"""The FHIR R4 definitions registry: search parameters per resource type, element tables, Patient compartment.

Loaded lazily (once) from the package data in ``esante/fhir/definitions/*.json.gz`` (built by
``scripts/build_definitions.py`` from the HL7 R4 4.0.1 definitions).

HL7 shares one SearchParameter between several resource types with a union expression (clinical ``code`` is
``AllergyIntolerance.code | AllergyIntolerance.reaction.substance | Condition.code | ...``). Every
:class:`SearchParamDef` handed out here is *narrowed* to one resource type: only the union branches rooted at
that type (or at ``Resource`` / ``DomainResource``) are kept.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

_GENERIC_ROOTS = frozenset({"Resource", "DomainResource"})


@dataclass(frozen=True, slots=True)
class SearchParamDef:
    code: str
    type: str  # string|token|reference|date|number|quantity|uri|composite|special
    expression: str | None  # FHIRPath narrowed to THIS resource type
    targets: tuple[str, ...]  # reference target types
    components: tuple[tuple[str, str], ...]  # composite: (component search type, expression relative to base)
    url: str
    description: str
    modifiers: tuple[str, ...] = ()
    comparators: tuple[str, ...] = ()
    chains: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ElementInfo:
    """One element of a resource or complex datatype (from the StructureDefinition snapshot)."""

    path: str  # relative to the type, e.g. "name.given", "value[x]"
    types: tuple[str, ...]  # FHIR type codes; several for a choice element
    min: int
    max: str  # "1" | "*" | "0"
    summary: bool
    ref: str | None = None  # contentReference target path (relative), e.g. Questionnaire "item.item" → "item"

    @property
    def is_array(self) -> bool:
        return self.max != "1" and self.max != "0"

    @property
    def is_choice(self) -> bool:
        return self.path.endswith("[x]")


def split_union(expression: str) -> list[str]:
    """Split a FHIRPath expression on its top-level ``|`` (outside parentheses, brackets and strings)."""
    parts: list[str] = []
    depth = 0
    quote: str | None = None
    start = 0
    i = 0
    while i < len(expression):
        ch = expression[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'`\"":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(expression[start:i].strip())
            start = i + 1
        i += 1
    parts.append(expression[start:].strip())
    return [p for p in parts if p]


def branch_root(branch: str) -> str:
    """The leading identifier of a union branch (``(Observation.value as Quantity)`` → ``Observation``)."""
    text = branch.lstrip("( \t\n")
    end = 0
    while end < len(text) and (text[end].isalnum() or text[end] == "_"):
        end += 1
    return text[:end]


def narrow_expression(expression: str, resource_type: str) -> str | None:
    """Keep the union branches of ``expression`` rooted at ``resource_type`` (or Resource/DomainResource)."""
    branches = split_union(expression)
    kept = [b for b in branches if (root := branch_root(b)) == resource_type or root in _GENERIC_ROOTS]
    if len(kept) == len(branches):
        return expression
    return " | ".join(kept) if kept else None


def _load(name: str) -> Any:
    data = resources.files("esante.fhir").joinpath("definitions", name).read_bytes()
    return json.loads(gzip.decompress(data))


class Registry:
    """Search parameters, element tables and the Patient compartment of FHIR R4 (immutable, shared)."""

    def __init__(
        self,
        search_parameters: list[dict[str, Any]],
        elements: dict[str, Any],
        compartment: dict[str, list[str]],
    ) -> None:
        self.resource_types: tuple[str, ...] = tuple(sorted(elements["resourceTypes"]))
        self._resource_set = frozenset(self.resource_types)
        self.complex_types: frozenset[str] = frozenset(elements["complexTypes"])
        self.primitive_types: frozenset[str] = frozenset(elements["primitiveTypes"])
        self._raw_elements: dict[str, dict[str, dict[str, Any]]] = elements["elements"]
        self._element_cache: dict[tuple[str, str], ElementInfo | None] = {}
        domain = {t for t in self.resource_types if "text" in self._raw_elements.get(t, {})}
        self._compartment = {
            rtype: tuple(p for p in params if not p.startswith("{")) for rtype, params in compartment.items()
        }
        by_type: dict[str, dict[str, SearchParamDef]] = {t: {} for t in self.resource_types}
        for sp in search_parameters:
            for base in sp["base"]:
                if base == "Resource":
                    targets_types: list[str] = list(self.resource_types)
                elif base == "DomainResource":
                    targets_types = sorted(domain)
                elif base in by_type:
                    targets_types = [base]
                else:
                    continue
                for rtype in targets_types:
                    expr = sp.get("expression")
                    if expr is not None and (len(sp["base"]) > 1 or base in _GENERIC_ROOTS):
                        expr = narrow_expression(expr, rtype)
                    by_type[rtype][sp["code"]] = SearchParamDef(
                        code=sp["code"],
                        type=sp["type"],
                        expression=expr,
                        targets=tuple(sp.get("target", ())),
                        components=tuple((c["type"], c["expression"]) for c in sp.get("component", ())),
                        url=sp["url"],
                        description=sp.get("description", ""),
                        modifiers=tuple(sp.get("modifier", ())),
                        comparators=tuple(sp.get("comparator", ())),
                        chains=tuple(sp.get("chain", ())),
                    )
        self._params: dict[str, Mapping[str, SearchParamDef]] = {
            t: MappingProxyType(dict(sorted(params.items()))) for t, params in by_type.items()
        }
        self._summary: dict[str, frozenset[str]] = {}

    def is_resource_type(self, name: str) -> bool:
        return name in self._resource_set

    def params(self, resource_type: str) -> Mapping[str, SearchParamDef]:
        """Every search parameter of ``resource_type`` by code (empty mapping for unknown types)."""
        return self._params.get(resource_type, MappingProxyType({}))

    def get(self, resource_type: str, code: str) -> SearchParamDef | None:
        params = self._params.get(resource_type)
        return params.get(code) if params is not None else None

    def patient_compartment(self, resource_type: str) -> tuple[str, ...]:
        """The param codes that put a ``resource_type`` resource in a Patient's compartment (may be empty)."""
        return self._compartment.get(resource_type, ())

    def element(self, type_name: str, path: str) -> ElementInfo | None:
        """The element ``path`` (relative: ``"name.given"``, ``"value[x]"``) of a resource or complex type.

        ``type_name`` may also be a backbone path such as ``"Observation.component"``.
        """
        key = (type_name, path)
        try:
            return self._element_cache[key]
        except KeyError:
            pass
        root, _, prefix = type_name.partition(".")
        full = f"{prefix}.{path}" if prefix else path
        raw = self._raw_elements.get(root, {}).get(full)
        info = (
            ElementInfo(
                path=full,
                types=tuple(raw["types"]),
                min=raw["min"],
                max=raw["max"],
                summary=raw["summary"],
                ref=raw.get("ref"),
            )
            if raw is not None
            else None
        )
        self._element_cache[key] = info
        return info

    def summary_elements(self, resource_type: str) -> frozenset[str]:
        """Top-level element names flagged isSummary (choice elements by base name, e.g. ``"value"``)."""
        cached = self._summary.get(resource_type)
        if cached is None:
            table = self._raw_elements.get(resource_type, {})
            cached = frozenset(
                path.removesuffix("[x]") for path, info in table.items() if "." not in path and info["summary"]
            )
            self._summary[resource_type] = cached
        return cached

    def is_complex_type(self, name: str) -> bool:
        return name in self.complex_types or name in self._raw_elements


def _extension_parameters() -> list[dict[str, Any]]:
    """SearchParameters on core extensions that IHE profiles need (hand-written package data, sources inside)."""
    data = resources.files("esante.fhir").joinpath("definitions", "extension-search-parameters.json").read_bytes()
    parameters: list[dict[str, Any]] = json.loads(data)["parameters"]
    return parameters


@cache
def get_registry() -> Registry:
    """The process-wide registry, loaded on first use from the package data."""
    return Registry(
        [*_load("search-parameters.json.gz"), *_extension_parameters()],
        _load("elements.json.gz"),
        _load("compartment-patient.json.gz"),
    )
