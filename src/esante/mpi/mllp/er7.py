"""HL7 v2 ER7 (the ``|^~\\&`` encoding): a message parsed into plain, regular nested lists, and written back.

Parsing is python-hl7's (``hl7.parse``, with its escape handling); its tree is ragged (a leaf may sit at any depth),
so it is normalised here into one shape: a field is a list of repetitions, a repetition a list of components, a
component a list of (unescaped) subcomponents. Everything else in the package reads that shape only.

Writing always uses the standard encoding characters ``|^~\\&``, whatever the sender used: a receiver must read
the delimiters of each message's MSH, so an answer in the standard set is correct for every sender.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import hl7
from hl7.util import unescape

Field = list[list[list[str]]]  # repetitions → components → subcomponents
HL7_NULL = '""'  # "present and null": for a full replacement, the same as absent


class ER7Error(ValueError):
    """The text is not an ER7 message (no MSH first, broken encoding characters)."""

    def __init__(self, message: str, field: int | None = None) -> None:
        super().__init__(message)
        self.field = field  # the MSH field at fault, when one is


@dataclass
class Segment:
    """One segment: ``fields[n - 1]`` is field n (for MSH, field 1 is the field separator and 2 the encoding
    characters, kept as written)."""

    name: str
    fields: list[Field]

    def field(self, number: int) -> Field:
        return self.fields[number - 1] if 0 < number <= len(self.fields) else []

    def repetitions(self, number: int) -> Field:
        """The field's repetitions that are not empty (nor the HL7 null)."""
        return [rep for rep in self.field(number) if any(v and v != HL7_NULL for comp in rep for v in comp)]

    def value(self, number: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
        """One value ('' when absent; the HL7 null ``""`` reads as absent)."""
        field = self.field(number)
        try:
            value = field[rep - 1][comp - 1][sub - 1]
        except IndexError:
            return ""
        return "" if value == HL7_NULL else value.strip()


@dataclass
class Message:
    segments: list[Segment]

    def first(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)

    def all(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]


def check_delimiters(text: str) -> None:
    """MSH-1 and MSH-2 must give five distinct, non-alphanumeric delimiters (a 5th encoding character, the
    truncation character of v2.7, is allowed)."""
    if not text.startswith("MSH"):
        raise ER7Error("the message does not start with an MSH segment")
    if len(text) < 8:
        raise ER7Error("the MSH segment is truncated", 2)
    field_sep = text[3]
    end = text.find(field_sep, 4)
    encoding = text[4:end] if end > 0 else ""
    delimiters = field_sep + encoding
    if len(encoding) not in (4, 5):
        raise ER7Error(f"MSH-2 must hold 4 encoding characters (^~\\&), not {encoding!r}", 2)
    if len(set(delimiters)) != len(delimiters) or any(c.isalnum() or c.isspace() for c in delimiters):
        raise ER7Error(f"the delimiters {delimiters!r} must be distinct and neither letters, digits nor spaces", 2)


def _leaf(container: object, value: str) -> str:
    return str(unescape(container, value))


def _components(segment: object, node: object) -> list[list[str]]:
    if isinstance(node, str):
        return [[_leaf(segment, node)]]
    comps: list[list[str]] = []
    for comp in node:  # type: ignore[attr-defined]
        if isinstance(comp, str):
            comps.append([_leaf(segment, comp)])
        else:
            comps.append([_leaf(segment, str(sub)) for sub in comp])
    return comps


def _field(segment: object, node: object) -> Field:
    if isinstance(node, str):
        return [[[_leaf(segment, node)]]]
    return [_components(segment, rep) for rep in node]  # type: ignore[attr-defined]


def parse(text: str) -> Message:
    """An ER7 message (segments separated by CR; LF and CRLF are tolerated) in the regular shape."""
    text = text.replace("\r\n", "\r").replace("\n", "\r").strip("\r\n\t ")
    check_delimiters(text)
    try:
        parsed = hl7.parse(text)
    except (hl7.ParseException, IndexError, ValueError) as error:
        raise ER7Error(f"the message cannot be parsed: {error}") from error
    segments: list[Segment] = []
    for raw in parsed:
        name = str(raw[0][0]) if len(raw) and len(raw[0]) else ""
        if len(name) != 3 or not name.isalnum() or not name.isupper():
            raise ER7Error(f"segment #{len(segments) + 1} has no valid segment id ({name[:8]!r})")
        if name == "MSH":
            fields: list[Field] = [[[[str(raw[1][0])]]], [[[str(raw[2][0])]]]]
            fields += [_field(raw, node) for node in raw[3:]]
        else:
            fields = [_field(raw, node) for node in raw[1:]]
        segments.append(Segment(name, fields))
    return Message(segments)


# --- writing -----------------------------------------------------------------------------------------------------

_ESCAPES = (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\"), ("\r", "\\X0D\\"))


def escape(value: str) -> str:
    for char, sequence in _ESCAPES:
        value = value.replace(char, sequence)
    return value.replace("\n", "\\X0A\\")


Part = str | Sequence[str]  # a component: one value, or its subcomponents


def one(*components: Part) -> Field:
    """A field of one repetition made of ``components`` (each a value or a sequence of subcomponents)."""
    return [[[c] if isinstance(c, str) else list(c) for c in components]]


def _trim(items: list[str]) -> list[str]:
    while items and not items[-1]:
        items.pop()
    return items


def write_field(field: Field) -> str:
    reps = []
    for rep in field:
        comps = _trim(["&".join(_trim([escape(s) for s in comp])) for comp in rep])
        reps.append("^".join(comps))
    return "~".join(_trim(reps))


def write_segment(name: str, fields: Sequence[Field]) -> str:
    """A segment; for MSH, ``fields`` start at MSH-3 (MSH-1 and MSH-2 are the standard delimiters)."""
    written = _trim([write_field(f) for f in fields])
    if name == "MSH":
        return "MSH|^~\\&|" + "|".join(written)
    return "|".join([name, *written])


def write_message(segments: Sequence[tuple[str, Sequence[Field]]]) -> str:
    return "\r".join(write_segment(name, fields) for name, fields in segments) + "\r"
