"""Which professions and specialties may prescribe what: the data file (``data/prescribing.json``, replaceable
with the ``wse_prescribing_file`` setting) and the decision — pure (no I/O).

A professional may prescribe in a category when their profession or one of their specialties (valid on the date,
from the HPD) lists it; a *limitation* is the field the prescription must stay within (e.g. a dentist's medicines:
dental and oral care), which the answer tells the caller: the WSE does not see the prescription's content.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


class PrescribingTableError(ValueError):
    """A prescribing file that cannot be used; the message names the problem."""


@dataclass(frozen=True)
class CategoryRight:
    category: str
    allowed: bool
    limitation: str | None = None  # None with allowed: no limitation


@dataclass(frozen=True)
class PrescribingTable:
    version: str
    categories: dict[str, str]  # code → display
    professions: dict[str, dict[str, str | None]]  # profession code → category → limitation (None: none)
    specialties: dict[str, dict[str, str | None]]

    def rights(self, profession: str | None, specialties: Iterable[str], wanted: Iterable[str]) -> list[CategoryRight]:
        """The right of each ``wanted`` category (every category when none is named)."""
        sources = [self.professions.get(profession or "", {}), *(self.specialties.get(s, {}) for s in specialties)]
        out: list[CategoryRight] = []
        for category in list(wanted) or list(self.categories):
            granted = [source[category] for source in sources if category in source]
            if not granted:
                out.append(CategoryRight(category, False))
            elif any(limit is None for limit in granted):
                out.append(CategoryRight(category, True))
            else:
                out.append(CategoryRight(category, True, "; ".join(str(limit) for limit in dict.fromkeys(granted))))
        return out

    def may_prescribe(self, profession: str | None, specialties: Iterable[str]) -> bool:
        return any(right.allowed for right in self.rights(profession, specialties, ()))


def parse_table(data: Any, professions: Iterable[str]) -> PrescribingTable:
    """Check a prescribing table against the categories it declares and the HPD's profession codes."""
    if not isinstance(data, dict) or not isinstance(data.get("categories"), dict):
        raise PrescribingTableError("a prescribing table is a JSON object with 'categories', 'professions'")
    categories = {str(k): str(v) for k, v in data["categories"].items()}
    known = set(professions)

    def section(name: str) -> dict[str, dict[str, str | None]]:
        raw = data.get(name, {})
        if not isinstance(raw, dict):
            raise PrescribingTableError(f"'{name}' must be an object")
        out: dict[str, dict[str, str | None]] = {}
        for code, rights in raw.items():
            if code not in known:
                raise PrescribingTableError(f"{name}: {code!r} is not a code of the HPD's profession code system")
            if not isinstance(rights, dict):
                raise PrescribingTableError(f"{name}.{code}: an object category → limitation (or null)")
            for category, limit in rights.items():
                if category not in categories:
                    raise PrescribingTableError(f"{name}.{code}: unknown category {category!r}")
                if limit is not None and not isinstance(limit, str):
                    raise PrescribingTableError(f"{name}.{code}.{category}: a text or null")
            out[str(code)] = {str(c): (None if v is None else str(v)) for c, v in rights.items()}
        return out

    return PrescribingTable(str(data.get("version", "")), categories, section("professions"), section("specialties"))


def load_table(path: str = "") -> PrescribingTable:
    from esante.hpd.codes import professions

    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError) as error:
            raise PrescribingTableError(f"cannot read the prescribing table {path}: {error}") from error
    else:
        data = json.loads((resources.files("esante.wse") / "data" / "prescribing.json").read_text(encoding="utf-8"))
    return parse_table(data, professions().concepts)


@cache
def packaged_table() -> PrescribingTable:
    return load_table()
