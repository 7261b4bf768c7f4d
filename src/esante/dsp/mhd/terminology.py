"""The definitional resources the DSP's document interfaces serve: the document classes (CodeSystem, ValueSet, and
the ConceptMap from LOINC document types) and the IHE MHD SearchParameters the generic search implements
(``creation``, ``designationType``, ``sourceId``).

Written into the store at start-up under fixed ids when missing or different (same scheme as the HPD's code
systems: a changed package writes a new version, an unchanged one nothing), so ``GET /fhir/CodeSystem?url=
urn:esante:dsp:document-class`` or ``GET /fhir/SearchParameter?url=...`` serve what the running code applies.
Definitions are public to every signed-in person (:class:`DefinitionsRule`); system clients read them through their
scopes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from importlib import resources
from typing import Any

import orjson

from esante.dsp.mhd.classes import DocumentClasses
from esante.dsp.mhd.model import MHD
from esante.fhir.packaged import ensure_packaged
from esante.fhir.store import ResourceStore
from esante.security.pdp.decision import AccessRequest, Grant
from esante.security.pdp.restrictions import EVERYTHING, Restriction

_PEOPLE = frozenset({"patient", "assistant", "professional", "staff"})
DEFINITION_TYPES = frozenset({"ValueSet", "ConceptMap", "SearchParameter"})


def mhd_search_parameters() -> list[dict[str, Any]]:
    """The IHE MHD SearchParameters the registry loads (``fhir/definitions/extension-search-parameters.json``), as
    the resources the server serves (ids as in the guide)."""
    raw = resources.files("esante.fhir").joinpath("definitions", "extension-search-parameters.json").read_bytes()
    served = []
    for parameter in orjson.loads(raw)["parameters"]:
        url = str(parameter["url"])
        if not url.startswith(f"{MHD}/SearchParameter/"):
            continue
        resource = copy.deepcopy(parameter)
        resource["id"] = url.rsplit("/", 1)[1]
        resource["name"] = resource["id"].split("-", 1)[-1]
        resource["status"] = "active"
        resource["publisher"] = "IHE IT Infrastructure Technical Committee (served by the eSanté platform)"
        served.append(resource)
    return served


def definitions(classes: DocumentClasses) -> list[dict[str, Any]]:
    return [*classes.resources(), *mhd_search_parameters()]


async def ensure_definitions(store: ResourceStore, classes: DocumentClasses) -> int:
    """Write the definitions that are missing or differ; returns how many were written."""
    return await ensure_packaged(store, definitions(classes), "dsp-mhd-definitions")


class DefinitionsRule:
    """Every signed-in person may read and search ValueSets, ConceptMaps and SearchParameters (definitions)."""

    name = "definitions-read"

    def grants(self, request: AccessRequest) -> Iterable[Grant]:
        if (
            request.caller.kind in _PEOPLE
            and request.letter in ("r", "s")
            and request.resource_type in DEFINITION_TYPES
        ):
            yield Grant(self.name, EVERYTHING)

    def vetoes(self, request: AccessRequest) -> Iterable[Restriction]:
        return ()
