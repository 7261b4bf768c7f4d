"""The public directory search's parameters, checked, and the FHIR search they stand for.

Pure. A patient looks for a professional by name, profession, specialty and locality; this module validates those
inputs (every bad one is a 400 naming the parameter) and spells them as an ordinary PractitionerRole search, so
the generic search engine (one SQL statement, the policy's conditions inside) answers them:

* ``name``: every word must occur in one of the practitioner's names (family, given, prefix...), accents and case
  ignored (``muller`` finds *Müller*, ``silva`` finds *Da Silva*);
* ``profession``, ``specialty``: codes of the HPD's code system (``urn:esante:hpd:profession``, checked) or
  ``system|code`` of any other code system (not checked); a comma separates alternatives;
* ``locality``: the beginning of the city or of the postal code of a place where the role is practised (its
  location, else its organisation); ``1210`` also finds ``L-1210``.

Only what a patient should be offered is searched: the role is active, within its period, the practitioner holds
an active right to practise (``Practitioner.active``), the organisation is not inactive and no location of the
role is inactive.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

from esante.fhir.errors import FhirError, bad_request

PROFESSION_SYSTEM = "urn:esante:hpd:profession"
CRITERIA = ("name", "profession", "specialty", "locality")
PAGING = ("_count", "_offset")
IGNORED = frozenset({"_format", "_pretty"})
DEFAULT_COUNT = 20
MAX_COUNT = 50
MAX_OFFSET = 10_000
MAX_WORDS = 6
MAX_LENGTH = 100

CodeCheck = Callable[[str], str | None]
"""Given a code of the HPD code system, None when it is known, else why not (e.g. "unknown profession code")."""


@dataclass(frozen=True)
class DirectoryQuery:
    """A checked public directory search."""

    name: tuple[str, ...] = ()  # words
    profession: tuple[str, ...] = ()  # token values (OR)
    specialty: tuple[str, ...] = ()
    locality: str | None = None
    count: int = DEFAULT_COUNT
    offset: int = 0
    echo: list[tuple[str, str]] = field(default_factory=list)  # the criteria as given, for the paging links

    def practitioner_search(self) -> list[tuple[str, str]]:
        """The Practitioner search the name stands for (the handler looks the few matches up first)."""
        return [("name:contains", _escape(word)) for word in self.name]

    def search(self, *, chain_name: bool = True) -> list[tuple[str, str]]:
        """The PractitionerRole search (besides the locality, which :meth:`locality_alternatives` spells); the name
        as a chain unless ``chain_name`` is false (the caller then restricts ``practitioner`` itself)."""
        query: list[tuple[str, str]] = [
            ("active", "true"),
            ("_count", str(self.count)),
            ("_offset", str(self.offset)),
            ("_include", "PractitionerRole:practitioner"),
            ("_include", "PractitionerRole:location"),
            ("_include", "PractitionerRole:organization"),
        ]
        if chain_name:
            query += [(f"practitioner.{name}", value) for name, value in self.practitioner_search()]
        if self.profession:
            query.append(("role", ",".join(self.profession)))
        if self.specialty:
            query.append(("specialty", ",".join(self.specialty)))
        return query

    @staticmethod
    def exclusions(today: date) -> list[list[tuple[str, str]]]:
        """Searches whose matches are NOT offered: professionals without an active right to practise, ended or
        future roles, inactive organisations and locations. (Excluding the few inactive practitioners costs a small
        hashed set; requiring ``practitioner.active=true`` joined every role to its practitioner.)"""
        day = today.isoformat()
        return [
            [("practitioner.active", "false")],
            [("date", f"eb{day}")],
            [("date", f"sa{day}")],
            [("organization.active", "false")],
            [("location.status", "inactive")],
        ]

    def locality_alternatives(self) -> list[list[tuple[str, str]]]:
        """One search per way a role can be in the locality (any of them will do)."""
        if self.locality is None:
            return []
        values = [self.locality]
        if self.locality.isdigit():  # Luxembourg postal codes are written L-1234
            values.append(f"L-{self.locality}")
        text = ",".join(_escape(v) for v in values)
        return [
            [(f"{via}.{field_}", text)]
            for via in ("location", "organization")
            for field_ in ("address-city", "address-postalcode")
        ]


def _escape(text: str) -> str:
    """A FHIR search value: ``,`` ``$`` ``|`` and ``\\`` escaped."""
    for ch in ("\\", ",", "$", "|"):
        text = text.replace(ch, "\\" + ch)
    return text


def _problem(name: str, message: str) -> FhirError:
    return bad_request(f"{name}: {message}", expression=name)


def _text(name: str, value: str) -> str:
    text = " ".join(value.split())
    if not text:
        raise _problem(name, "is empty")
    if len(text) > MAX_LENGTH:
        raise _problem(name, f"is longer than {MAX_LENGTH} characters")
    if any(ord(ch) < 32 for ch in text):
        raise _problem(name, "holds control characters")
    return text


def _codes(name: str, value: str, check: CodeCheck | None) -> tuple[str, ...]:
    codes: list[str] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            raise _problem(name, f"empty code in {value!r}")
        system, bar, code = item.rpartition("|")
        if not bar:
            system, code = PROFESSION_SYSTEM, item
        if not code or any(ch.isspace() for ch in code):
            raise _problem(name, f"expected a code or system|code, got {item!r}")
        if system == PROFESSION_SYSTEM and check is not None:
            why = check(code)
            if why:
                raise _problem(name, why)
        codes.append(f"{_escape(system)}|{_escape(code)}" if system else _escape(code))
    return tuple(codes)


def _int(name: str, value: str, low: int, high: int) -> int:
    if not value.isdigit():
        raise _problem(name, f"expected a non-negative integer, got {value!r}")
    number = int(value)
    if number < low:
        raise _problem(name, f"must be at least {low}")
    return min(number, high)


def parse_directory_query(
    parameters: Sequence[tuple[str, str]],
    *,
    check_profession: CodeCheck | None = None,
    check_specialty: CodeCheck | None = None,
) -> DirectoryQuery:
    """Check the search's parameters (name/value pairs as given). Unknown ones, repeated criteria, malformed
    values and a search without any criterion are 400s naming the parameter."""
    seen: set[str] = set()
    values: dict[str, str] = {}
    for name, value in parameters:
        if name in IGNORED:
            continue
        if name not in CRITERIA and name not in PAGING:
            known = ", ".join((*CRITERIA, *PAGING))
            raise _problem(name, f"unknown parameter (the directory search takes {known})")
        if name in seen:
            raise _problem(name, "given more than once (separate alternatives with a comma)")
        seen.add(name)
        values[name] = value
    if not any(values.get(c, "").strip() for c in CRITERIA):
        raise bad_request(f"give at least one of {', '.join(CRITERIA)}", expression="name")
    name_words: tuple[str, ...] = ()
    if values.get("name", "").strip():
        name_words = tuple(dict.fromkeys(_text("name", values["name"]).lower().split()))
        if len(name_words) > MAX_WORDS:
            raise _problem("name", f"more than {MAX_WORDS} words")
    locality = _text("locality", values["locality"]) if values.get("locality", "").strip() else None
    profession = _codes("profession", values["profession"], check_profession) if values.get("profession") else ()
    specialty = _codes("specialty", values["specialty"], check_specialty) if values.get("specialty") else ()
    count = _int("_count", values["_count"], 1, MAX_COUNT) if "_count" in values else DEFAULT_COUNT
    offset = _int("_offset", values["_offset"], 0, MAX_OFFSET + 1) if "_offset" in values else 0
    if offset > MAX_OFFSET:
        raise _problem("_offset", f"at most {MAX_OFFSET}: narrow the search instead of paging further")
    echo = [(c, values[c]) for c in CRITERIA if values.get(c, "").strip()]
    return DirectoryQuery(name_words, profession, specialty, locality, count, offset, echo)
