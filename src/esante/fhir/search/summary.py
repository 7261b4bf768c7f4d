"""``_summary`` and ``_elements``: a subsetted copy of a resource, tagged SUBSETTED.

* ``true``: the elements flagged isSummary in the definitions, plus id/meta/resourceType;
* ``text``: ``text``, id, meta, resourceType and the top-level mandatory (min ≥ 1) elements;
* ``data``: everything but ``text``;
* ``_elements=a,b``: those top-level elements (``Type.a`` is accepted too; ``a.b`` keeps ``a`` whole), plus
  id, meta, resourceType and the mandatory elements.

``_summary`` wins over ``_elements`` when both are given (``_summary=false`` leaves ``_elements`` to act).
Choice elements are named by their base (``value`` keeps ``valueQuantity``); a primitive's ``_x`` extension
sibling follows ``x``.
"""

from __future__ import annotations

import copy
from typing import Any

from esante.fhir.definitions import Registry
from esante.fhir.search.parse import SearchRequest

SUBSETTED_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
SUBSETTED = {"system": SUBSETTED_SYSTEM, "code": "SUBSETTED", "display": "Resource encoded in summary mode"}
ALWAYS = frozenset({"resourceType", "id", "meta"})


def _element_name(key: str, resource_type: str, registry: Registry) -> str:
    """The definition name of a JSON key: ``_birthDate`` → ``birthDate``, ``valueQuantity`` → ``value``."""
    name = key[1:] if key.startswith("_") else key
    if registry.element(resource_type, name) is not None:
        return name
    for i in range(len(name) - 1, 0, -1):
        if name[i].isupper() and registry.element(resource_type, name[:i] + "[x]") is not None:
            return name[:i]
    return name


def _mandatory(name: str, resource_type: str, registry: Registry) -> bool:
    info = registry.element(resource_type, name) or registry.element(resource_type, name + "[x]")
    return info is not None and info.min >= 1


def apply_summary(resource: dict[str, Any], request: SearchRequest, registry: Registry) -> dict[str, Any]:
    """A copy of ``resource`` reduced as ``request.summary`` / ``request.elements`` ask (unchanged copy when
    neither applies), with the SUBSETTED tag added to ``meta.tag`` when anything may have been left out."""
    mode = request.summary
    elements = request.elements
    rtype = str(resource.get("resourceType", ""))
    if mode in ("true", "text", "data"):
        pass
    elif elements:
        mode = "elements"
    else:
        return copy.deepcopy(resource)
    if mode == "data":
        out = {k: copy.deepcopy(v) for k, v in resource.items() if k not in ("text", "_text")}
    else:
        if mode == "true":
            keep = set(registry.summary_elements(rtype))
            mandatory = False
        elif mode == "text":
            keep = {"text"}
            mandatory = True
        else:
            keep = set()
            for raw in elements or ():
                path = raw.strip()
                if path.startswith(rtype + "."):
                    path = path[len(rtype) + 1 :]
                keep.add(path.split(".", 1)[0])
            mandatory = True
        keep |= ALWAYS
        out = {}
        for key, value in resource.items():
            name = _element_name(key, rtype, registry)
            if name in keep or (mandatory and _mandatory(name, rtype, registry)):
                out[key] = copy.deepcopy(value)
    meta = out.get("meta")
    meta = dict(meta) if isinstance(meta, dict) else {}
    tags = [t for t in meta.get("tag", []) if isinstance(t, dict)]
    if not any(t.get("system") == SUBSETTED_SYSTEM and t.get("code") == "SUBSETTED" for t in tags):
        tags.append(dict(SUBSETTED))
    meta["tag"] = tags
    out["meta"] = meta
    # keep resourceType first, as FHIR JSON writers do
    return {"resourceType": out.pop("resourceType", rtype), **out}
