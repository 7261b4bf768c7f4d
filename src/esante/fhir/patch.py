"""PATCH support: JSON Patch (RFC 6902) and FHIRPath Patch (FHIR R4 §3.1.0.8 / fhirpatch).

Both functions work on a deep copy and never mutate their input. Malformed patch documents raise
``FhirError(400)``; patches that are well formed but cannot be applied to this resource raise
``FhirError(422)`` naming the JSON pointer / FHIRPath at fault.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from esante.fhir.errors import FhirError, bad_request, unprocessable

# ================================================================================================
# JSON Patch (RFC 6902)
# ================================================================================================

_JSON_OPS = {"add", "remove", "replace", "move", "copy", "test"}
_ARRAY_INDEX_RE = re.compile(r"0|[1-9][0-9]*")


def _parse_pointer(pointer: Any, where: str) -> list[str]:
    if not isinstance(pointer, str):
        raise bad_request(f"JSON Patch {where}: '{where.split('.')[-1]}' must be a string JSON pointer")
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise bad_request(f"JSON Patch {where}: invalid JSON pointer {pointer!r} (must start with '/')")
    tokens = pointer[1:].split("/")
    for token in tokens:
        if re.search(r"~(?![01])", token):
            raise bad_request(f"JSON Patch {where}: invalid escape in JSON pointer {pointer!r}")
    return [token.replace("~1", "/").replace("~0", "~") for token in tokens]


def _json_equal(a: Any, b: Any) -> bool:
    """JSON value equality: 1 == 1.0, but 1 != True and "1" != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _array_index(container: list[Any], token: str, pointer: str, *, for_add: bool) -> int:
    if for_add and token == "-":
        return len(container)
    if not _ARRAY_INDEX_RE.fullmatch(token):
        raise unprocessable(f"JSON Patch: {token!r} is not a valid array index in {pointer!r}")
    index = int(token)
    limit = len(container) if for_add else len(container) - 1
    if index > limit:
        raise unprocessable(f"JSON Patch: array index {index} out of range at {pointer!r}")
    return index


def _resolve(doc: Any, tokens: list[str], pointer: str) -> Any:
    node = doc
    for depth, token in enumerate(tokens):
        here = "/" + "/".join(tokens[: depth + 1])
        if isinstance(node, dict):
            if token not in node:
                raise unprocessable(f"JSON Patch: path {here!r} does not exist (in {pointer!r})")
            node = node[token]
        elif isinstance(node, list):
            node = node[_array_index(node, token, pointer, for_add=False)]
        else:
            raise unprocessable(f"JSON Patch: path {here!r} does not exist (in {pointer!r})")
    return node


def _json_add(doc: Any, tokens: list[str], value: Any, pointer: str) -> Any:
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1], pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_array_index(parent, last, pointer, for_add=True), value)
    else:
        raise unprocessable(f"JSON Patch: cannot add {pointer!r}: its parent is not an object or array")
    return doc


def _json_remove(doc: Any, tokens: list[str], pointer: str) -> Any:
    if not tokens:
        raise unprocessable("JSON Patch: cannot remove the whole document")
    parent = _resolve(doc, tokens[:-1], pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise unprocessable(f"JSON Patch: path {pointer!r} does not exist")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_array_index(parent, last, pointer, for_add=False))
    raise unprocessable(f"JSON Patch: path {pointer!r} does not exist")


def apply_json_patch(resource: dict[str, Any], operations: Any) -> dict[str, Any]:
    """Apply an RFC 6902 JSON Patch document to a deep copy of ``resource`` and return it."""
    if not isinstance(operations, list):
        raise bad_request("JSON Patch document must be a JSON array of operations")
    doc: Any = copy.deepcopy(resource)
    for number, op in enumerate(operations):
        where = f"operation[{number}]"
        if not isinstance(op, dict):
            raise bad_request(f"JSON Patch {where}: each operation must be a JSON object")
        name = op.get("op")
        if name not in _JSON_OPS:
            raise bad_request(f"JSON Patch {where}: unknown or missing 'op' {name!r}")
        if "path" not in op:
            raise bad_request(f"JSON Patch {where}: 'path' is missing")
        path = op["path"]
        tokens = _parse_pointer(path, f"{where}.path")
        if name in ("add", "replace", "test") and "value" not in op:
            raise bad_request(f"JSON Patch {where}: '{name}' requires a 'value'")
        if name in ("move", "copy") and "from" not in op:
            raise bad_request(f"JSON Patch {where}: '{name}' requires 'from'")
        if name == "add":
            doc = _json_add(doc, tokens, copy.deepcopy(op["value"]), path)
        elif name == "remove":
            _json_remove(doc, tokens, path)
        elif name == "replace":
            _resolve(doc, tokens, path)
            if tokens:
                _json_remove(doc, tokens, path)
            doc = _json_add(doc, tokens, copy.deepcopy(op["value"]), path)
        elif name == "move":
            source = op["from"]
            from_tokens = _parse_pointer(source, f"{where}.from")
            if tokens[: len(from_tokens)] == from_tokens and len(tokens) > len(from_tokens):
                raise unprocessable(f"JSON Patch: cannot move {source!r} into its own child {path!r}")
            if from_tokens != tokens:
                value = _json_remove(doc, from_tokens, source)
                doc = _json_add(doc, tokens, value, path)
        elif name == "copy":
            from_tokens = _parse_pointer(op["from"], f"{where}.from")
            value = copy.deepcopy(_resolve(doc, from_tokens, op["from"]))
            doc = _json_add(doc, tokens, value, path)
        else:  # test
            actual = _resolve(doc, tokens, path)
            if not _json_equal(actual, op["value"]):
                raise unprocessable(f"JSON Patch: test failed at {path!r}: value is not equal to {op['value']!r}")
    if not isinstance(doc, dict):
        raise unprocessable("JSON Patch: the result is not a JSON object")
    return doc


# ================================================================================================
# FHIRPath Patch
# ================================================================================================

_FP_TYPES = {"add", "insert", "delete", "replace", "move"}


@dataclass
class _Slot:
    """One element found by a path: ``parent[key]`` (or ``parent[key][index]`` when repeating)."""

    parent: dict[str, Any] | None
    key: str | None
    index: int | None
    value: Any


@dataclass
class _Step:
    kind: str  # "member" | "index" | "where" | "first" | "last" | "oftype" | "extension"
    arg: Any = None


def _split_steps(path: str) -> list[_Step]:
    """Tokenise the FHIRPath subset used in patch paths into steps."""
    steps: list[_Step] = []
    i, n = 0, len(path)
    while i < n:
        ch = path[i]
        if ch == ".":
            i += 1
            continue
        if ch == "[":
            end = path.find("]", i)
            if end < 0 or not path[i + 1 : end].strip().isdigit():
                raise bad_request(f"FHIRPath Patch: unsupported indexer in path {path!r}")
            steps.append(_Step("index", int(path[i + 1 : end])))
            i = end + 1
            continue
        match = re.match(r"[A-Za-z_][A-Za-z0-9_]*|`[^`]+`", path[i:])
        if not match:
            raise bad_request(f"FHIRPath Patch: cannot parse path {path!r} at position {i}")
        name = match.group(0).strip("`")
        i += len(match.group(0))
        if i < n and path[i] == "(":
            depth, j, quote = 0, i, ""
            while j < n:
                c = path[j]
                if quote:
                    if c == "\\":
                        j += 1
                    elif c == quote:
                        quote = ""
                elif c in "'\"":
                    quote = c
                elif c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= n:
                raise bad_request(f"FHIRPath Patch: unbalanced parentheses in path {path!r}")
            argument = path[i + 1 : j].strip()
            i = j + 1
            if name == "where":
                steps.append(_Step("where", argument))
            elif name in ("first", "last") and not argument:
                steps.append(_Step(name))
            elif name == "ofType":
                steps.append(_Step("oftype", argument.split(".")[-1]))
            elif name == "extension":
                steps.append(_Step("extension", argument.strip("'\"")))
            else:
                raise bad_request(f"FHIRPath Patch: function {name}() is not supported in patch paths")
        else:
            steps.append(_Step("member", name))
    return steps


def _where(criteria: str, candidates: list[_Slot], resource: dict[str, Any]) -> list[_Slot]:
    import fhirpathpy

    kept = []
    for slot in candidates:
        try:
            result = fhirpathpy.evaluate(slot.value, criteria, {"resource": resource, "rootResource": resource})
        except Exception as exc:
            raise bad_request(f"FHIRPath Patch: cannot evaluate where({criteria}): {exc}") from exc
        if result == [True]:
            kept.append(slot)
    return kept


def _member(slots: list[_Slot], name: str) -> list[_Slot]:
    found: list[_Slot] = []
    for slot in slots:
        node = slot.value
        if not isinstance(node, dict):
            continue
        keys = [name] if name in node else [k for k in node if k.startswith(name) and k[len(name) :][:1].isupper()]
        for key in keys:
            value = node[key]
            if isinstance(value, list):
                found.extend(_Slot(node, key, i, item) for i, item in enumerate(value))
            else:
                found.append(_Slot(node, key, None, value))
    return found


def _locate(resource: dict[str, Any], path: str) -> list[_Slot]:
    steps = _split_steps(path)
    slots = [_Slot(None, None, None, resource)]
    if steps and steps[0].kind == "member" and steps[0].arg in (resource.get("resourceType"), "Resource"):
        steps = steps[1:]
    elif steps and steps[0].kind == "member" and steps[0].arg[:1].isupper():
        raise bad_request(f"FHIRPath Patch: path {path!r} does not apply to a {resource.get('resourceType')} resource")
    for step in steps:
        if step.kind == "member":
            slots = _member(slots, step.arg)
        elif step.kind == "index":
            slots = slots[step.arg : step.arg + 1]
        elif step.kind == "first":
            slots = slots[:1]
        elif step.kind == "last":
            slots = slots[-1:]
        elif step.kind == "where":
            slots = _where(step.arg, slots, resource)
        elif step.kind == "oftype":
            wanted = step.arg
            slots = [
                s
                for s in slots
                if (isinstance(s.value, dict) and s.value.get("resourceType") == wanted)
                or (s.key is not None and s.key.endswith(wanted[:1].upper() + wanted[1:]))
            ]
        elif step.kind == "extension":
            slots = [
                s for s in _member(slots, "extension") if isinstance(s.value, dict) and s.value.get("url") == step.arg
            ]
    return slots


def _element_names(resource: dict[str, Any], target: Any) -> list[str] | None:
    """JSON property names (no indices) from the root to the object ``target`` (by identity), or None."""

    def search(node: Any, trail: list[str]) -> list[str] | None:
        if node is target:
            return trail
        if isinstance(node, dict):
            if "resourceType" in node and node is not resource:
                return None  # do not descend into contained resources for cardinality
            for key, value in node.items():
                found = search(value, [*trail, key])
                if found is not None:
                    return found
        elif isinstance(node, list):
            for item in node:
                found = search(item, trail)
                if found is not None:
                    return found
        return None

    return search(resource, [])


def _is_list(resource: dict[str, Any], parent: dict[str, Any], name: str) -> bool | None:
    from esante.fhir.validation import element_is_list

    trail = _element_names(resource, parent)
    if trail is None:
        return None
    rtype = resource.get("resourceType")
    return element_is_list(rtype, [*trail, name]) if isinstance(rtype, str) else None


def _parts(parameter: dict[str, Any], where: str) -> dict[str, Any]:
    parts = parameter.get("part")
    if not isinstance(parts, list):
        raise bad_request(f"FHIRPath Patch {where}: an operation needs parts")
    by_name: dict[str, Any] = {}
    for part in parts:
        if not isinstance(part, dict) or not isinstance(part.get("name"), str):
            raise bad_request(f"FHIRPath Patch {where}: every part needs a name")
        by_name[part["name"]] = part
    return by_name


def _part_value(part: dict[str, Any]) -> tuple[Any, bool]:
    """(JSON value, has_value) of a part: value[x], or nested parts for an anonymous complex value."""
    for key, value in part.items():
        if key.startswith("value") and key[5:6].isupper():
            return copy.deepcopy(value), True
    if "resource" in part:
        return copy.deepcopy(part["resource"]), True
    nested = part.get("part")
    if isinstance(nested, list) and nested:
        built: dict[str, Any] = {}
        for sub in nested:
            if not isinstance(sub, dict) or not isinstance(sub.get("name"), str):
                raise bad_request("FHIRPath Patch: every part of a complex value needs a name")
            value, has = _part_value(sub)
            if not has:
                continue
            name = sub["name"]
            if name in built:
                existing = built[name]
                built[name] = [*existing, value] if isinstance(existing, list) else [existing, value]
            else:
                built[name] = value
        return built, True
    return None, False


def _string_part(parts: dict[str, Any], name: str, where: str, *, required: bool = True) -> str | None:
    part = parts.get(name)
    if part is None:
        if required:
            raise bad_request(f"FHIRPath Patch {where}: '{name}' is missing")
        return None
    for key, value in part.items():
        if key.startswith("value") and isinstance(value, str):
            return value
    raise bad_request(f"FHIRPath Patch {where}: '{name}' must have a string value")


def _int_part(parts: dict[str, Any], name: str, where: str) -> int:
    part = parts.get(name)
    value = None if part is None else part.get("valueInteger")
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"FHIRPath Patch {where}: '{name}' (valueInteger) is missing or not an integer")
    return value


def _single(slots: list[_Slot], path: str, op: str) -> _Slot:
    if not slots:
        raise unprocessable(f"FHIRPath Patch: no content found at {path} when {op}", expression=path)
    if len(slots) > 1:
        raise unprocessable(
            f"FHIRPath Patch: path {path} matches {len(slots)} elements, {op} needs exactly one",
            expression=path,
        )
    return slots[0]


def _split_list_path(path: str) -> tuple[str, str]:
    """``Patient.identifier`` -> (``Patient``, ``identifier``): the parent path and the repeating element."""
    match = re.fullmatch(r"(.*)\.([A-Za-z_][A-Za-z0-9_]*)", path.strip())
    if not match:
        raise bad_request(f"FHIRPath Patch: {path!r} must end with the name of a repeating element")
    return match.group(1), match.group(2)


def _list_at(resource: dict[str, Any], path: str, op: str, *, create: bool) -> list[Any]:
    parent_path, name = _split_list_path(path)
    parent = _single(_locate(resource, parent_path), parent_path, op).value
    if not isinstance(parent, dict):
        raise unprocessable(f"FHIRPath Patch: {parent_path} is not an element with children", expression=path)
    current = parent.get(name)
    if current is None and create:
        parent[name] = current = []
    if not isinstance(current, list):
        raise unprocessable(f"FHIRPath Patch: {path} is not a list", expression=path)
    return current


def _delete_slot(slot: _Slot) -> None:
    parent, key = slot.parent, slot.key
    if parent is None or key is None:
        raise unprocessable("FHIRPath Patch: cannot delete the resource itself")
    ext_key = f"_{key}"
    if slot.index is None:
        del parent[key]
        parent.pop(ext_key, None)
        return
    items = parent[key]
    del items[slot.index]
    ext = parent.get(ext_key)
    if isinstance(ext, list) and len(ext) > slot.index:
        del ext[slot.index]
    if not items:
        del parent[key]
        parent.pop(ext_key, None)


def _prune(node: Any) -> bool:
    """Drop empty objects / arrays left by a delete (FHIR JSON allows neither); True if ``node`` is empty."""
    if isinstance(node, dict):
        for key in [k for k, v in node.items() if isinstance(v, dict | list) and _prune(v)]:
            del node[key]
        return not node
    if isinstance(node, list):
        node[:] = [item for item in node if not (isinstance(item, dict | list) and _prune(item))]
        return not node
    return False


def _apply_operation(resource: dict[str, Any], parameter: Any, where: str) -> None:
    if not isinstance(parameter, dict):
        raise bad_request(f"FHIRPath Patch {where}: each parameter must be an object")
    if parameter.get("name") != "operation":
        raise bad_request(f"FHIRPath Patch {where}: parameter name must be 'operation'")
    parts = _parts(parameter, where)
    op = _string_part(parts, "type", where)
    if op not in _FP_TYPES:
        raise bad_request(f"FHIRPath Patch {where}: unknown operation type {op!r}")
    path = _string_part(parts, "path", where)
    assert path is not None
    value, has_value = _part_value(parts["value"]) if "value" in parts else (None, False)
    if op in ("add", "insert", "replace") and not has_value:
        raise bad_request(f"FHIRPath Patch {where}: '{op}' requires a value")

    if op == "delete":
        slots = _locate(resource, path)
        if not slots:
            return
        _delete_slot(_single(slots, path, "deleting"))
        _prune(resource)
    elif op == "replace":
        slot = _single(_locate(resource, path), path, "replacing")
        if slot.parent is None or slot.key is None:
            raise unprocessable("FHIRPath Patch: cannot replace the resource itself", expression=path)
        if slot.index is None:
            slot.parent[slot.key] = value
        else:
            slot.parent[slot.key][slot.index] = value
    elif op == "add":
        name = _string_part(parts, "name", where)
        assert name is not None
        target = _single(_locate(resource, path), path, "adding").value
        if not isinstance(target, dict):
            raise unprocessable(f"FHIRPath Patch: cannot add {name!r} to a primitive at {path}", expression=path)
        existing = target.get(name)
        if isinstance(existing, list):
            existing.append(value)
        elif existing is not None:
            if _is_list(resource, target, name):
                target[name] = [existing, value]
            else:
                raise unprocessable(
                    f"FHIRPath Patch: {path}.{name} already has a value (use replace)",
                    expression=f"{path}.{name}",
                )
        else:
            target[name] = [value] if _is_list(resource, target, name) else value
    elif op == "insert":
        index = _int_part(parts, "index", where)
        items = _list_at(resource, path, "inserting", create=index == 0)
        if not 0 <= index <= len(items):
            raise unprocessable(
                f"FHIRPath Patch: insert index {index} out of range for {path} (0..{len(items)})",
                expression=path,
            )
        items.insert(index, value)
    else:  # move
        source = _int_part(parts, "source", where)
        destination = _int_part(parts, "destination", where)
        items = _list_at(resource, path, "moving", create=False)
        if not 0 <= source < len(items) or not 0 <= destination < len(items):
            raise unprocessable(
                f"FHIRPath Patch: move {source}->{destination} out of range for {path} (size {len(items)})",
                expression=path,
            )
        items.insert(destination, items.pop(source))


def apply_fhirpath_patch(resource: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """Apply a FHIRPath Patch (Parameters of ``operation`` parameters) to a deep copy of ``resource``."""
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
        raise bad_request("FHIRPath Patch body must be a Parameters resource")
    operations = parameters.get("parameter", [])
    if not isinstance(operations, list):
        raise bad_request("FHIRPath Patch: Parameters.parameter must be an array")
    result = copy.deepcopy(resource)
    for number, parameter in enumerate(operations):
        try:
            _apply_operation(result, parameter, f"Parameters.parameter[{number}]")
        except FhirError as exc:
            issues = [
                issue
                if issue.expression
                else type(issue)(
                    code=issue.code,
                    diagnostics=issue.diagnostics,
                    severity=issue.severity,
                    expression=(f"Parameters.parameter[{number}]",),
                )
                for issue in exc.issues
            ]
            raise FhirError(exc.status, issues) from None
    return result
