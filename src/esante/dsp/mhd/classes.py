"""The DSP document classes (package data ``esante/dsp/data/document-classes.json``): a FHIR Bundle holding the
CodeSystem ``urn:esante:dsp:document-class``, its ValueSet and the ConceptMap from the usual LOINC document types
to the classes. The same resources are written into the store at start-up (``terminology.py``), so what the
server serves is what it applies.

A submitted DocumentReference keeps the codes its source gave; the platform adds its class as one more coding of
its (single: MHD allows one) category, taken from an explicit class coding, else from the mapping of its type, else
from the mapping of a LOINC code in its category. A document none of these classify keeps no class (the access
rules decide what an unclassified document means).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

CLASS_SYSTEM = "urn:esante:dsp:document-class"
LOINC = "http://loinc.org"


@dataclass(frozen=True)
class DocumentClasses:
    """The classes (code → display) and the LOINC mapping (LOINC code → class code)."""

    bundle: dict[str, Any]
    displays: dict[str, str]
    loinc: dict[str, str]

    @classmethod
    def from_bundle(cls, bundle: dict[str, Any]) -> DocumentClasses:
        found = {entry["resource"]["resourceType"]: entry["resource"] for entry in bundle.get("entry", [])}
        code_system = found.get("CodeSystem")
        if code_system is None or code_system.get("url") != CLASS_SYSTEM:
            raise ValueError(f"the document classes Bundle has no CodeSystem {CLASS_SYSTEM}")
        displays = {c["code"]: c.get("display", c["code"]) for c in code_system.get("concept", [])}
        loinc: dict[str, str] = {}
        for group in found.get("ConceptMap", {}).get("group", []):
            if group.get("source") != LOINC or group.get("target") != CLASS_SYSTEM:
                continue
            for element in group.get("element", []):
                targets = [t["code"] for t in element.get("target", []) if t.get("code") in displays]
                if targets:
                    loinc[element["code"]] = targets[0]
        return cls(bundle, displays, loinc)

    def resources(self) -> list[dict[str, Any]]:
        """The CodeSystem, ValueSet and ConceptMap as FHIR resources (copies)."""
        return [copy.deepcopy(entry["resource"]) for entry in self.bundle.get("entry", [])]

    def coding(self, code: str) -> dict[str, str]:
        return {"system": CLASS_SYSTEM, "code": code, "display": self.displays[code]}

    def class_of(self, document: dict[str, Any]) -> str | None:
        """The class a DocumentReference carries or its LOINC type (then category) implies; None: unclassified."""
        categories = document.get("category") or []
        for concept in categories:
            for coding in concept.get("coding", []) if isinstance(concept, dict) else []:
                if coding.get("system") == CLASS_SYSTEM:
                    return str(coding.get("code"))
        type_ = document.get("type")
        for concept in [type_] if isinstance(type_, dict) else []:
            found = self._mapped(concept)
            if found:
                return found
        for concept in categories:
            found = self._mapped(concept) if isinstance(concept, dict) else None
            if found:
                return found
        return None

    def _mapped(self, concept: dict[str, Any]) -> str | None:
        for coding in concept.get("coding", []):
            if coding.get("system") == LOINC and coding.get("code") in self.loinc:
                return self.loinc[coding["code"]]
        return None

    def unknown_class(self, document: dict[str, Any]) -> str | None:
        """A class coding whose code is not one of ours (the submission is refused for it)."""
        for concept in document.get("category") or []:
            for coding in concept.get("coding", []) if isinstance(concept, dict) else []:
                if coding.get("system") == CLASS_SYSTEM and coding.get("code") not in self.displays:
                    return str(coding.get("code"))
        return None

    def classify(self, document: dict[str, Any]) -> str | None:
        """Add the document's class to its category (in place) and return it."""
        code = self.class_of(document)
        if code is None:
            return None
        categories = document.get("category")
        if not categories:
            document["category"] = [{"coding": [self.coding(code)]}]
            return code
        first = categories[0]
        codings = first.setdefault("coding", [])
        if not any(c.get("system") == CLASS_SYSTEM for c in codings):
            codings.append(self.coding(code))
        return code


@cache
def _packaged() -> DocumentClasses:
    raw = resources.files("esante.dsp").joinpath("data", "document-classes.json").read_bytes()
    return DocumentClasses.from_bundle(orjson.loads(raw))


def document_classes(path: str = "") -> DocumentClasses:
    """The packaged classes, or those of the file the setting ``mhd_document_classes_file`` names."""
    if not path:
        return _packaged()
    return DocumentClasses.from_bundle(orjson.loads(Path(path).read_bytes()))
