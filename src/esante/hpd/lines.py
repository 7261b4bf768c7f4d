"""What an import line becomes before it is written: directory resources keyed on their business identifiers,
referring to each other by *logical references* (``Reference.identifier``), which the writer resolves to
``Type/id``. Pure (no I/O): both file formats (CSV, NDJSON) produce :class:`Line`s; one writer stores them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Any

import orjson

from esante.hpd.model import KEY_SYSTEMS, RightToPractise

SYSTEM_TYPES = {system: res_type for res_type, system in KEY_SYSTEMS.items()}


@dataclass(frozen=True)
class Item:
    """One directory resource of a line: its type, business key and body (no id, no meta)."""

    type: str
    key: str
    body: dict[str, Any]
    right: RightToPractise | None = None  # Practitioner: the status the line states
    checked: bool = False  # validated against FHIR R4 already (NDJSON); else the writer validates it once

    @cached_property
    def targets(self) -> tuple[tuple[str, str], ...]:
        """(type, key) of every directory resource the body refers to by logical reference."""
        return tuple(ref_target(ref) for ref in references(self.body))

    def fingerprint(self) -> bytes:
        """A digest of the body as the file gives it: the same resource given twice must be given the same way."""
        return hashlib.blake2b(orjson.dumps(self.body, option=orjson.OPT_SORT_KEYS), digest_size=12).digest()


@dataclass(frozen=True)
class Line:
    """A line of an import file: the resources it states, in the order they are written (referenced first)."""

    number: int
    items: list[Item] = field(default_factory=list)


@dataclass(frozen=True)
class Rejection:
    line: int
    reason: str


def logical_ref(res_type: str, key: str, display: str | None = None) -> dict[str, Any]:
    """A reference to a directory resource by its business identifier (resolved to ``Type/id`` on write)."""
    ref: dict[str, Any] = {"type": res_type, "identifier": {"system": KEY_SYSTEMS[res_type], "value": key}}
    if display:
        ref["display"] = display
    return ref


def references(value: Any) -> list[dict[str, Any]]:
    """Every logical reference to a directory resource in ``value`` (a Reference whose ``identifier`` has a
    business-key system and that has no literal ``reference`` yet), in document order."""
    found: list[dict[str, Any]] = []
    _collect(value, found)
    return found


def _collect(node: Any, found: list[dict[str, Any]]) -> None:
    # written for speed: it runs over every resource of every line (a national import walks ~15 million nodes)
    if type(node) is dict:
        ident = node.get("identifier")
        if type(ident) is dict and "reference" not in node and ident.get("system") in SYSTEM_TYPES:
            found.append(node)
        children: Any = node.values()
    else:
        children = node
    for child in children:
        kind = type(child)
        if kind is dict or kind is list:
            _collect(child, found)


def ref_target(ref: dict[str, Any]) -> tuple[str, str]:
    """(type, key) a logical reference points to."""
    ident = ref["identifier"]
    return SYSTEM_TYPES[ident["system"]], str(ident.get("value", ""))


def period_ended(period: dict[str, Any] | None, today: date) -> bool:
    """True when ``period.end`` (a date or dateTime) lies before ``today``."""
    end = (period or {}).get("end")
    return isinstance(end, str) and end[:10] < today.isoformat()
