"""The profession x document class habilitation matrix (``data/habilitation.json``, or the file named by the
``dsp_habilitation_file`` setting). Pure once loaded.

A professional reads (and writes) only the document classes their profession is habilitated for, whatever grant
they hold; an emergency access reads only the *essential* classes among them. Professions are the HPD's
(``urn:esante:hpd:profession``); a specialty counts as its profession. ``*`` means every class — and documents
without a DSP class, which only such professions see.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from esante.dsp.model import DOCUMENT_CLASSES

ALL = "*"


class HabilitationError(ValueError):
    """The matrix file cannot be used (the message names the profession or class and the problem)."""


@dataclass(frozen=True)
class Classes:
    """A set of document classes, or every class (``everything``)."""

    codes: frozenset[str] = frozenset()
    everything: bool = False

    def __bool__(self) -> bool:
        return self.everything or bool(self.codes)

    def union(self, other: Classes) -> Classes:
        if self.everything or other.everything:
            return Classes(everything=True)
        return Classes(self.codes | other.codes)

    def intersect(self, codes: Iterable[str]) -> Classes:
        wanted = frozenset(codes)
        return Classes(wanted if self.everything else self.codes & wanted)


NONE = Classes()


@dataclass(frozen=True)
class Habilitation:
    read: dict[str, Classes]  # profession → classes it reads
    write: dict[str, Classes]  # profession → classes it writes
    essential: frozenset[str]
    version: str = ""

    def reads(self, professions: Iterable[str]) -> Classes:
        return _union(self.read.get(_profession(code), NONE) for code in professions)

    def writes(self, professions: Iterable[str]) -> Classes:
        return _union(self.write.get(_profession(code), NONE) for code in professions)

    def emergency_reads(self, professions: Iterable[str]) -> Classes:
        return self.reads(professions).intersect(self.essential)


def _union(parts: Iterable[Classes]) -> Classes:
    result = NONE
    for part in parts:
        result = result.union(part)
    return result


def _profession(code: str) -> str:
    """The profession of a specialty code (itself for a profession)."""
    from esante.hpd.codes import professions

    concept = professions().get(code)
    return concept.parent if concept is not None and concept.parent is not None else code


def _classes(value: Any, where: str) -> Classes:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise HabilitationError(f"{where}: expected a list of document classes or '*'")
    if ALL in value:
        if len(value) != 1:
            raise HabilitationError(f"{where}: '*' stands alone")
        return Classes(everything=True)
    unknown = sorted(set(value) - set(DOCUMENT_CLASSES))
    if unknown:
        raise HabilitationError(
            f"{where}: unknown document class {unknown[0]!r} (one of {', '.join(DOCUMENT_CLASSES)})"
        )
    return Classes(frozenset(value))


def parse_habilitation(data: Any, source: str = "habilitation file") -> Habilitation:
    from esante.hpd.codes import professions

    if not isinstance(data, dict) or not isinstance(data.get("professions"), dict):
        raise HabilitationError(f"{source}: needs an object 'professions' (profession code → read/write classes)")
    read: dict[str, Classes] = {}
    write: dict[str, Classes] = {}
    for code, entry in data["professions"].items():
        concept = professions().get(code)
        if concept is None or concept.parent is not None:
            raise HabilitationError(
                f"{source}: {code!r} is not a profession of the HPD (top-level code of urn:esante:hpd:profession)"
            )
        if not isinstance(entry, dict) or set(entry) - {"read", "write"}:
            raise HabilitationError(f"{source}: profession {code!r} needs 'read' and 'write' lists only")
        read[code] = _classes(entry.get("read", []), f"{source}: profession {code!r} read")
        write[code] = _classes(entry.get("write", []), f"{source}: profession {code!r} write")
        if write[code] and not (
            read[code].everything or (not write[code].everything and write[code].codes <= read[code].codes)
        ):
            raise HabilitationError(f"{source}: profession {code!r} writes classes it may not read")
    essential = _classes(data.get("essential", []), f"{source}: essential")
    if essential.everything:
        raise HabilitationError(f"{source}: essential must list document classes, not '*'")
    return Habilitation(read, write, essential.codes, str(data.get("version", "")))


def load_habilitation(path: str | Path | None = None) -> Habilitation:
    """The matrix from ``path``, or the packaged default."""
    if path:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise HabilitationError(f"{source}: cannot be read ({exc.strerror})") from exc
    else:
        source = "packaged habilitation.json"
        text = resources.files("esante.dsp").joinpath("data/habilitation.json").read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HabilitationError(f"{source}: not valid JSON ({exc})") from exc
    return parse_habilitation(data, source)
