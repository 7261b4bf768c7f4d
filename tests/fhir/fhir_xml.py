"""A small FHIR XML -> JSON converter for test fixtures (HL7's FHIRPath Patch cases).

Cardinality and primitive types come from the fhir.resources R4B model metadata (via
``esante.fhir.validation.model_spec``): repeating elements become arrays, primitives are typed
(boolean, integer, decimal), ``id``/``extension`` on primitives go to ``_name``, ``xhtml`` is kept as text.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from esante.fhir.validation import model_spec, resource_model

FHIR_NS = "{http://hl7.org/fhir}"
XHTML_NS = "http://www.w3.org/1999/xhtml"


def _local(tag: str) -> str:
    return tag.split("}", 1)[1] if tag.startswith("{") else tag


def _typed(kind: str | None, text: str) -> Any:
    if kind == "boolean":
        return text == "true"
    if kind in ("integer", "unsignedInt", "positiveInt", "integer64"):
        return int(text)
    if kind == "decimal":
        return int(text) if text.lstrip("-").isdigit() else float(text)
    return text


def _xhtml(element: ET.Element) -> str:
    ET.register_namespace("", XHTML_NS)
    return ET.tostring(element, encoding="unicode").strip()


def resource_to_json(element: ET.Element) -> dict[str, Any]:
    """Convert one FHIR resource element (``<Patient xmlns="http://hl7.org/fhir">``) to FHIR JSON."""
    rtype = _local(element.tag)
    model = resource_model(rtype)
    if model is None:
        raise ValueError(f"no model for resource type {rtype}")
    result: dict[str, Any] = {"resourceType": rtype}
    _fill(model, element, result)
    return result


def _fill(model: Any, element: ET.Element, out: dict[str, Any]) -> None:
    fields = model_spec(model).fields
    for attr in ("id", "url"):
        if attr in element.attrib and attr in fields:
            out[attr] = element.attrib[attr]
    for child in element:
        if not isinstance(child.tag, str):  # comments
            continue
        name = _local(child.tag)
        fspec = fields.get(name)
        if fspec is None:
            raise ValueError(f"unknown element {name!r} in {model.__name__}")
        if fspec.kind == "primitive":
            if fspec.primitive == "xhtml":
                value: Any = _xhtml(child)
                ext: dict[str, Any] | None = None
            else:
                raw = child.attrib.get("value")
                value = None if raw is None else _typed(fspec.primitive, raw)
                ext = {}
                if "id" in child.attrib:
                    ext["id"] = child.attrib["id"]
                extensions = [c for c in child if isinstance(c.tag, str) and _local(c.tag) == "extension"]
                if extensions:
                    ext_model = model_spec(model).fields[f"_{name}"].child
                    ext["extension"] = []
                    ext_spec = model_spec(ext_model).fields["extension"].child
                    for item in extensions:
                        converted: dict[str, Any] = {}
                        _fill(ext_spec, item, converted)
                        ext["extension"].append(converted)
            if fspec.is_list:
                values = out.setdefault(name, [])
                values.append(value)
                if ext:
                    exts = out.setdefault(f"_{name}", [])
                    exts.extend([None] * (len(values) - 1 - len(exts)))
                    exts.append(ext)
            else:
                if value is not None:
                    out[name] = value
                if ext:
                    out[f"_{name}"] = ext
            continue
        if fspec.kind == "resource":
            inner = [c for c in child if isinstance(c.tag, str)]
            value = resource_to_json(inner[0])
        else:
            value = {}
            _fill(fspec.child, child, value)
        if fspec.is_list:
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    # pad primitive-extension arrays to the length of their value arrays
    for key in list(out):
        if key.startswith("_") and isinstance(out[key], list) and isinstance(out.get(key[1:]), list):
            out[key].extend([None] * (len(out[key[1:]]) - len(out[key])))


def parse_resource(element: ET.Element) -> dict[str, Any]:
    """The single resource element inside a wrapper element (``<input>``, ``<output>``, ``<diff>``)."""
    children = [c for c in element if isinstance(c.tag, str)]
    if len(children) != 1:
        raise ValueError(f"expected exactly one resource inside <{element.tag}>, got {len(children)}")
    return resource_to_json(children[0])
