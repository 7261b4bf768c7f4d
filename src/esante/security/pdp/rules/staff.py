"""Agency staff: each role may do what its line in the role table says (``security/data/roles.json`` by default).

The defaults follow the principle that staff see what their job needs and no clinical content: administrators
manage the directory and read the audit trail, identity-vigilance agents manage identities (Patient, Person,
their review tasks), statisticians only count (``_summary=count``), never read a resource.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from esante.security.pdp.decision import AccessRequest, Grant
from esante.security.pdp.restrictions import EVERYTHING, Restriction

_LETTERS = frozenset("cruds")


@dataclass(frozen=True)
class RoleLine:
    types: frozenset[str]  # resource types, or "*"
    letters: frozenset[str]
    count_only: bool = False

    def covers(self, resource_type: str, letter: str) -> bool:
        return letter in self.letters and ("*" in self.types or resource_type in self.types)


RoleTable = Mapping[str, tuple[RoleLine, ...]]


class RoleTableError(ValueError):
    """The role table file is malformed (the message names the role and the problem)."""


def parse_role_table(data: Any) -> dict[str, tuple[RoleLine, ...]]:
    if not isinstance(data, dict):
        raise RoleTableError("the role table must be a JSON object of role → list of lines")
    table: dict[str, tuple[RoleLine, ...]] = {}
    for role, lines in data.items():
        if role.startswith("_"):
            continue
        if not isinstance(lines, list):
            raise RoleTableError(f"role {role!r}: expected a list of lines")
        parsed: list[RoleLine] = []
        for i, line in enumerate(lines):
            types, letters = line.get("types") if isinstance(line, dict) else None, None
            if isinstance(line, dict):
                letters = line.get("permissions")
            if not isinstance(types, list) or not all(isinstance(t, str) and t for t in types):
                raise RoleTableError(f"role {role!r} line {i}: 'types' must be a list of resource types")
            if not isinstance(letters, str) or not letters or not set(letters) <= _LETTERS:
                raise RoleTableError(f"role {role!r} line {i}: 'permissions' must be letters among c r u d s")
            count_only = bool(line.get("count_only", False)) if isinstance(line, dict) else False
            parsed.append(RoleLine(frozenset(types), frozenset(letters), count_only))
        table[role] = tuple(parsed)
    return table


def load_role_table(path: str | Path | None = None) -> dict[str, tuple[RoleLine, ...]]:
    """The role table from ``path``, or the packaged default."""
    if path:
        text = Path(path).read_text(encoding="utf-8")
    else:
        text = resources.files("esante.security").joinpath("data/roles.json").read_text(encoding="utf-8")
    try:
        return parse_role_table(json.loads(text))
    except json.JSONDecodeError as exc:
        raise RoleTableError(f"the role table is not valid JSON: {exc}") from exc


class StaffRule:
    name = "staff-role"

    def __init__(self, table: RoleTable) -> None:
        self.table = table

    def grants(self, request: AccessRequest) -> Iterable[Grant]:
        if request.caller.kind != "staff":
            return
        roles = request.caller.attributes.get("roles") or ()
        for role in roles:
            for line in self.table.get(role, ()):
                if line.covers(request.resource_type, request.letter):
                    yield Grant(f"{self.name}:{role}", EVERYTHING, count_only=line.count_only)

    def vetoes(self, request: AccessRequest) -> Iterable[Restriction]:
        return ()
