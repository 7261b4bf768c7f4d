"""JSON in and out: orjson everywhere, stored resources embedded as raw bytes (never re-serialised)."""

from __future__ import annotations

from typing import Any

import orjson

from esante.fhir.errors import bad_request


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def raw(content: bytes) -> orjson.Fragment:
    """Embed already-serialised JSON bytes inside a larger document."""
    return orjson.Fragment(content)


def loads_resource(body: bytes) -> dict[str, Any]:
    """Parse a request body that must be one JSON object; 400 naming the problem otherwise."""
    if not body or not body.strip():
        raise bad_request("the request body is empty; a FHIR resource (JSON) is required")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise bad_request("the request body must be a JSON object (a FHIR resource)")
    return value


def loads_any(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}") from exc
