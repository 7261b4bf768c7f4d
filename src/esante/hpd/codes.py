"""The professions code system (package data ``data/professions.json``) and the organisation types.

Loaded once per process. Professions are the top-level concepts; their child concepts are the specialties
(medical and dental specialties, nursing specialisations). An imported professional has exactly one profession
and any number of specialties *of that profession*.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from esante.hpd.model import ORGANIZATION_TYPE_SYSTEM, PROFESSION_SYSTEM


@dataclass(frozen=True)
class Concept:
    code: str
    display: str  # French
    english: str
    parent: str | None  # the profession of a specialty; None for a profession

    def coding(self, system: str = PROFESSION_SYSTEM) -> dict[str, str]:
        return {"system": system, "code": self.code, "display": self.display}


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((resources.files("esante.hpd") / "data" / name).read_text(encoding="utf-8"))
    return data


def _flatten(concepts: list[dict[str, Any]], parent: str | None, into: dict[str, Concept]) -> None:
    for concept in concepts:
        english = next((d["value"] for d in concept.get("designation", []) if d.get("language") == "en"), "")
        into[concept["code"]] = Concept(concept["code"], concept["display"], english, parent)
        _flatten(concept.get("concept", []), concept["code"], into)


@dataclass(frozen=True)
class CodeSystemTable:
    url: str
    resource: dict[str, Any]
    concepts: dict[str, Concept]

    def get(self, code: str) -> Concept | None:
        return self.concepts.get(code)

    def professions(self) -> list[Concept]:
        return [c for c in self.concepts.values() if c.parent is None]

    def specialties_of(self, profession: str) -> list[Concept]:
        return [c for c in self.concepts.values() if c.parent == profession]


def _table(name: str) -> CodeSystemTable:
    resource = _load(name)
    concepts: dict[str, Concept] = {}
    _flatten(resource["concept"], None, concepts)
    return CodeSystemTable(resource["url"], resource, concepts)


@cache
def professions() -> CodeSystemTable:
    table = _table("professions.json")
    assert table.url == PROFESSION_SYSTEM
    return table


@cache
def organization_types() -> CodeSystemTable:
    table = _table("organization-types.json")
    assert table.url == ORGANIZATION_TYPE_SYSTEM
    return table


def code_systems() -> list[dict[str, Any]]:
    """The CodeSystem resources the HPD serves (fixed ids ``hpd-profession``, ``hpd-organization-type``)."""
    return [professions().resource, organization_types().resource]


class CodeError(ValueError):
    """A profession, specialty or organisation type the code systems do not define; the message says which."""


def check_profession(code: str) -> Concept:
    concept = professions().get(code)
    if concept is None or concept.parent is not None:
        raise CodeError(f"unknown profession code {code!r} (see CodeSystem {PROFESSION_SYSTEM})")
    return concept


def check_specialty(code: str, profession: str) -> Concept:
    concept = professions().get(code)
    if concept is None or concept.parent is None:
        raise CodeError(f"unknown specialty code {code!r} (see CodeSystem {PROFESSION_SYSTEM})")
    if concept.parent != profession:
        raise CodeError(f"specialty {code!r} belongs to the profession {concept.parent!r}, not {profession!r}")
    return concept


def check_organization_type(code: str) -> Concept:
    concept = organization_types().get(code)
    if concept is None:
        known = ", ".join(organization_types().concepts)
        raise CodeError(f"unknown organisation type {code!r} (one of {known})")
    return concept
