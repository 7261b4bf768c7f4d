"""Example resources of the shared IG examples (../shared/data/ig-examples), read in place (never copied)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from esante.fhir.definitions import get_registry
from tests.conftest import SHARED

IG_EXAMPLES = SHARED / "data" / "ig-examples"


def ig_examples_dir(*parts: str) -> Path:
    path = IG_EXAMPLES.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"shared test data missing: {path} (clone ../shared beside the repo)")
    return path


def _walk(value: Any) -> Iterator[dict[str, Any]]:
    """Every resource of a known type in a JSON document (Bundle entries included, contained ones not)."""
    registry = get_registry()
    if isinstance(value, dict):
        rtype = value.get("resourceType")
        if isinstance(rtype, str) and registry.is_resource_type(rtype):
            yield value
        for key, item in value.items():
            if key != "contained":
                yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


@cache
def example_resources(folder: str | None = None) -> tuple[tuple[str, dict[str, Any]], ...]:
    """(file name, resource) for every resource found in the example files (of one IG folder, or all)."""
    root = ig_examples_dir(folder) if folder else ig_examples_dir()
    found = []
    for path in sorted(root.rglob("*.json")):
        with path.open(encoding="utf-8") as fh:
            document = json.load(fh)
        found.extend((path.name, res) for res in _walk(document))
    return tuple(found)
