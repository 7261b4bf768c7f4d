"""HL7 v2 messages of the MPI, pure: bytes in → what the message asks for; the outcome → the answer's bytes.

Supported (anything else is rejected with AR):

- ADT^A01/A04/A08/A28/A31 (admit, register, update, add, update person): add or revise the local identity of PID-3
  (:class:`Feed`);
- ADT^A40 (merge patient, IHE PAM ITI-30 / PIX ITI-8): the identity of MRG-1 is merged into the one of PID-3
  (:class:`Merge`);
- QBP^Q22 (IHE PDQ ITI-21, find candidates): a demographics query (:class:`Query`), answered with RSP^K22.

Versions 2.3 to 2.9 are read (the segments used have kept their meaning). The character set is MSH-18: ASCII,
8859/1 or UNICODE UTF-8; without MSH-18 the message is read as UTF-8 (ASCII's superset). Answers use the standard
encoding characters and the character set of the request.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from esante.mpi.mllp.er7 import ER7Error, Field, Message, Segment, one, parse, write_message
from esante.mpi.mllp.errors import TEXTS, Code, Hl7Error, Location, app_error, reject
from esante.mpi.mllp.pid import (
    SEX_TO_GENDER,
    identifiers,
    key_identifier,
    parse_date,
    patient_from_pid,
    pid_fields,
    system_of,
)

FEED_EVENTS = frozenset({"A01", "A04", "A08", "A28", "A31"})
MERGE_EVENTS = frozenset({"A40"})
_VERSION = re.compile(r"^2\.(3|3\.1|4|5|5\.1|6|7|7\.1|8|8\.1|8\.2|9|9\.1)$")
# MSH-18 (HL7 table 0211) → Python codec
CHARSETS = {"": "utf-8", "ASCII": "ascii", "8859/1": "latin-1", "UNICODE UTF-8": "utf-8"}
# QPD-3 (ITI-21 query parameters: @<segment field path>) → FHIR Patient search parameter
QUERY_FIELDS = {
    "PID.3": "identifier",
    "PID.3.1": "identifier",
    "PID.5": "family",
    "PID.5.1": "family",
    "PID.5.1.1": "family",
    "PID.5.2": "given",
    "PID.6": "mothersMaidenName",
    "PID.6.1": "mothersMaidenName",
    "PID.6.1.1": "mothersMaidenName",
    "PID.7": "birthdate",
    "PID.7.1": "birthdate",
    "PID.8": "gender",
    "PID.11": "address",
    "PID.11.1": "address",
    "PID.11.1.1": "address",
    "PID.11.3": "address-city",
    "PID.11.4": "address-state",
    "PID.11.5": "address-postalcode",
    "PID.11.6": "address-country",
    "PID.13": "telecom",
    "PID.13.1": "telecom",
}
QUERY_SYSTEM_FIELDS = ("PID.3.4", "PID.3.4.1", "PID.3.4.2")  # the assigning authority of @PID.3.1
QUERY_NAME = "Q22"


@dataclass(frozen=True)
class Header:
    """What the answer needs from MSH (fields kept as sent, to be echoed)."""

    sending_application: Field = field(default_factory=list)
    sending_facility: Field = field(default_factory=list)
    receiving_application: Field = field(default_factory=list)
    receiving_facility: Field = field(default_factory=list)
    message_code: str = ""
    event: str = ""
    control_id: str = ""
    processing_id: str = "P"
    version: str = "2.5"
    charset: str = ""  # MSH-18 as sent ('' when absent)
    codec: str = "ascii"  # the codec the answer is written with

    @property
    def kind(self) -> str:
        return f"{self.message_code}^{self.event}" if self.event else self.message_code


@dataclass(frozen=True)
class Feed:
    """Add or revise the local identity ``key`` (system, value) with ``patient``."""

    key: tuple[str, str]
    patient: dict[str, Any]


@dataclass(frozen=True)
class Merge:
    """Retire the identity ``merged`` into ``survivor`` (both (system, value))."""

    merged: tuple[str, str]
    survivor: tuple[str, str]


@dataclass(frozen=True)
class Query:
    """A PDQ query: FHIR search parameters, the quantity limit (RCP-2), the domains to return (QPD-8)."""

    tag: str
    params: list[tuple[str, str]]
    limit: int | None
    domains: list[str] | None
    qpd: list[Field]


Action = Feed | Merge | Query


@dataclass(frozen=True)
class Incoming:
    """A message read: its header (always, for the answer) and either its action or why it is refused."""

    header: Header
    action: Action | None = None
    error: Hl7Error | None = None


# --- reading ------------------------------------------------------------------------------------------------------


def _raw_msh(payload: bytes) -> list[str]:
    """MSH split on its field separator from bytes decoded as latin-1 (always possible), for the answer's header
    and MSH-18 when the message itself cannot be read. ``fields[n - 1]`` is MSH-n for n ≥ 2."""
    text = payload.decode("latin-1").lstrip("\r\n\t ")
    if not text.startswith("MSH") or len(text) < 4:
        return []
    line = re.split(r"[\r\n]", text, maxsplit=1)[0]
    sep = line[3]
    return ["MSH", sep, *line[4:].split(sep)[0:]][1:]  # [sep, MSH-2, MSH-3, ...]


def _fallback_header(raw: list[str]) -> Header:
    def get(number: int) -> str:
        return raw[number - 1] if len(raw) >= number else ""

    comp = get(2)[:1] or "^"

    def hd(number: int) -> Field:
        return [[[c] for c in get(number).split(comp)]] if get(number) else []

    kind = get(9).split(comp)
    charset = get(18).split(comp)[0].split(get(2)[1:2] or "~")[0].strip().upper()
    return Header(
        hd(3),
        hd(4),
        hd(5),
        hd(6),
        kind[0].strip(),
        kind[1].strip() if len(kind) > 1 else "",
        get(10).strip()[:199],
        get(11).split(comp)[0].strip() or "P",
        get(12).split(comp)[0].strip() or "2.5",
        charset,
        CHARSETS.get(charset, "ascii"),
    )


def decode(payload: bytes, header: Header) -> str:
    """The message text in the character set MSH-18 names (AR when unsupported or not matching the bytes)."""
    location = Location("MSH", 18)
    if header.charset not in CHARSETS:
        raise reject(
            Code.TABLE_VALUE_NOT_FOUND,
            f"character set {header.charset!r} (MSH-18) is not supported: ASCII, 8859/1 or UNICODE UTF-8",
            location,
        )
    codec = CHARSETS[header.charset]
    try:
        return payload.decode(codec)
    except UnicodeDecodeError as error:
        named = header.charset or "UTF-8 (no MSH-18)"
        raise reject(
            Code.DATA_TYPE, f"the message is not valid {named}: byte {error.start} cannot be decoded", location
        ) from None


def _header(msh: Segment, fallback: Header) -> Header:
    version = msh.value(12)
    return Header(
        msh.field(3),
        msh.field(4),
        msh.field(5),
        msh.field(6),
        msh.value(9).upper(),
        (msh.value(9, comp=2) or "").upper(),
        msh.value(10),
        msh.value(11) or "P",
        version or "2.5",
        fallback.charset,
        fallback.codec,
    )


def read(payload: bytes) -> Incoming:
    """Read one message; whatever is wrong becomes the ``error`` of the result (never an exception)."""
    fallback = _fallback_header(_raw_msh(payload))
    try:
        text = decode(payload, fallback)
        try:
            message = parse(text)
        except ER7Error as error:
            location = Location("MSH", error.field) if error.field else None
            code = Code.DATA_TYPE if error.field else Code.SEGMENT_SEQUENCE
            raise reject(code, str(error), location) from None
        msh = message.segments[0]
        header = _header(msh, fallback)
    except Hl7Error as error:
        return Incoming(fallback, error=error)
    try:
        return Incoming(header, action=_action(header, message, msh))
    except Hl7Error as error:
        return Incoming(header, error=error)


def _action(header: Header, message: Message, msh: Segment) -> Action:
    if not header.control_id:
        raise reject(Code.REQUIRED_FIELD_MISSING, "MSH-10 (message control id) is required", Location("MSH", 10))
    if not header.message_code:
        raise reject(Code.REQUIRED_FIELD_MISSING, "MSH-9 (message type) is required", Location("MSH", 9))
    if not _VERSION.match(msh.value(12)):
        raise reject(
            Code.UNSUPPORTED_VERSION,
            f"HL7 version {msh.value(12)!r} (MSH-12) is not supported: 2.3 to 2.9",
            Location("MSH", 12),
        )
    if header.processing_id not in ("P", "T", "D"):
        raise reject(
            Code.UNSUPPORTED_PROCESSING_ID,
            f"processing id {header.processing_id!r} (MSH-11) is not P, T or D",
            Location("MSH", 11),
        )
    event = header.event
    if header.message_code == "ADT":
        if not event:  # v2.3 senders may leave MSH-9.2 empty and put the event in EVN-1
            evn = message.first("EVN")
            event = evn.value(1).upper() if evn is not None else ""
        if event in FEED_EVENTS:
            return _feed(message)
        if event in MERGE_EVENTS:
            return _merge(message)
        raise reject(
            Code.UNSUPPORTED_EVENT,
            f"ADT event {event or '(none)'} is not supported: A01, A04, A08, A28, A31, A40",
            Location("MSH", 9, 2),
        )
    if header.message_code == "QBP":
        if event != "Q22":
            raise reject(
                Code.UNSUPPORTED_EVENT, f"QBP event {event or '(none)'} is not supported: Q22", Location("MSH", 9, 2)
            )
        return _query(message)
    raise reject(
        Code.UNSUPPORTED_MESSAGE_TYPE,
        f"message type {header.message_code} is not supported: ADT, QBP",
        Location("MSH", 9, 1),
    )


def _required(message: Message, name: str) -> Segment:
    segment = message.first(name)
    if segment is None:
        raise app_error(Code.SEGMENT_SEQUENCE, f"the {name} segment is missing", Location(name))
    return segment


def _feed(message: Message) -> Feed:
    patient, key = patient_from_pid(_required(message, "PID"))
    return Feed(key, patient)


def _merge(message: Message) -> Merge:
    pid = _required(message, "PID")
    mrg = _required(message, "MRG")
    survivor = key_identifier(identifiers(pid, 3))
    merged = key_identifier(identifiers(mrg, 1, "MRG"), 1, "MRG")
    if merged == survivor:
        location = Location("MRG", 1)
        raise app_error(Code.DATA_TYPE, "MRG-1 names the surviving identity itself", location)
    return Merge(merged, survivor)


def _query(message: Message) -> Query:
    qpd = _required(message, "QPD")
    name = qpd.value(1).upper()
    if name != QUERY_NAME:
        raise app_error(
            Code.TABLE_VALUE_NOT_FOUND, f"query {name or '(none)'} (QPD-1) is not supported: Q22", Location("QPD", 1)
        )
    params: list[tuple[str, str]] = []
    identifier_value, identifier_system = "", ""
    for index, rep in enumerate(qpd.repetitions(3), start=1):
        location = Location("QPD", 3, 1, index)
        path = (rep[0][0] if rep and rep[0] else "").strip().lstrip("@").upper()
        value = (rep[1][0] if len(rep) > 1 and rep[1] else "").strip()
        if not value or value == '""':
            continue
        if path in QUERY_SYSTEM_FIELDS:
            identifier_system = _query_system(path, rep[1], value, location)
            continue
        parameter = QUERY_FIELDS.get(path)
        if parameter is None:
            raise app_error(
                Code.TABLE_VALUE_NOT_FOUND, f"QPD-3 field @{path} is not a supported query parameter", location
            )
        if parameter == "birthdate":
            value = parse_date(value, location)
        elif parameter == "gender":
            if value.upper() not in SEX_TO_GENDER:
                raise app_error(Code.TABLE_VALUE_NOT_FOUND, f"QPD-3 @PID.8 {value!r} is not F, M, O or U", location)
            value = SEX_TO_GENDER[value.upper()]
        if parameter == "identifier":
            identifier_value = value
            continue
        params.append((parameter, value))
    if identifier_value:
        params.append(
            ("identifier", f"{identifier_system}|{identifier_value}" if identifier_system else identifier_value)
        )
    elif identifier_system:
        params.append(("identifier", f"{identifier_system}|"))
    if not params:
        location = Location("QPD", 3)
        raise app_error(Code.REQUIRED_FIELD_MISSING, "QPD-3 gives no query parameter", location)
    domains = None
    if qpd.repetitions(8):
        domains = [system_of(rep, Location("QPD", 8, 4, i)) for i, rep in enumerate(qpd.repetitions(8), 1)]
    return Query(qpd.value(2), params, _limit(message.first("RCP")), domains, qpd.fields)


def _query_system(path: str, component: list[str], value: str, location: Location) -> str:
    """@PID.3.4.2 = an OID; @PID.3.4 = the HD (namespace&OID&ISO); @PID.3.4.1 = a namespace that is an OID."""
    if path == "PID.3.4":
        return system_of([[""], [""], [""], component], location)
    return system_of([[""], [""], [""], [value] if path == "PID.3.4.1" else ["", value, "ISO"]], location)


def _limit(rcp: Segment | None) -> int | None:
    if rcp is None or not rcp.value(2):
        return None
    location = Location("RCP", 2, 1)
    amount, unit = rcp.value(2), rcp.value(2, comp=2).upper()
    if not amount.isdigit() or int(amount) < 1:
        raise app_error(Code.DATA_TYPE, f"RCP-2 {amount!r} is not a positive number of records", location)
    if unit and unit != "RD":
        raise app_error(Code.TABLE_VALUE_NOT_FOUND, f"RCP-2 unit {unit!r} is not RD (records)", Location("RCP", 2, 2))
    return int(amount)


# --- writing ------------------------------------------------------------------------------------------------------


def _encode(text: str, codec: str) -> bytes:
    """The answer in the request's character set; a character it lacks is written without its accent, or '?'."""
    try:
        return text.encode(codec)
    except UnicodeEncodeError:
        pass
    out = []
    for char in text:
        try:
            out.append(char.encode(codec))
        except UnicodeEncodeError:
            stripped = unicodedata.normalize("NFKD", char).encode(codec, "ignore")
            out.append(stripped or b"?")
    return b"".join(out)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")


def _msh(header: Header, kind: Field, control_id: str | None, now: str | None) -> list[Field]:
    """MSH-3.. of an answer: receiver and sender swapped, the request's version and character set."""
    return [
        header.receiving_application or one("ESANTE-MPI"),
        header.receiving_facility,
        header.sending_application,
        header.sending_facility,
        one(now or _now()),
        [],
        kind,
        one(control_id or uuid.uuid4().hex[:20]),
        one(header.processing_id),
        one(header.version if _VERSION.match(header.version) else "2.5"),
        [],
        [],
        [],
        [],
        [],
        one(header.charset) if header.charset in CHARSETS and header.charset else [],
    ]


def _msa_err(header: Header, error: Hl7Error | None) -> list[tuple[str, list[Field]]]:
    if error is None:
        return [("MSA", [one("AA"), one(header.control_id)])]
    segments: list[tuple[str, list[Field]]] = [("MSA", [one(error.ack), one(header.control_id), one(error.text[:80])])]
    err: list[Field] = [
        [],
        one(*error.location.parts()) if error.location else [],
        one(str(int(error.code)), TEXTS[error.code], "HL70357"),
        one("E"),
        [],
        [],
        [],
        one(error.text),
    ]
    segments.append(("ERR", err))
    return segments


def acknowledgement(
    header: Header, error: Hl7Error | None = None, *, control_id: str | None = None, now: str | None = None
) -> bytes:
    """ACK^<event>^ACK: AA, or AE/AR with the ERR segment."""
    kind = one("ACK", header.event, "ACK") if header.event else one("ACK")
    segments = [("MSH", _msh(header, kind, control_id, now)), *_msa_err(header, error)]
    return _encode(write_message(segments), header.codec)


@dataclass(frozen=True)
class QueryResult:
    patients: list[dict[str, Any]]
    total: int | None = None


def query_response(
    header: Header,
    query: Query | None,
    result: QueryResult | None = None,
    error: Hl7Error | None = None,
    *,
    control_id: str | None = None,
    now: str | None = None,
) -> bytes:
    """RSP^K22: MSA, [ERR], QAK (OK, NF, AE or AR with the hit counts), the QPD echoed, one PID per patient."""
    kind = one("RSP", "K22", "RSP_K21")
    segments = [("MSH", _msh(header, kind, control_id, now)), *_msa_err(header, error)]
    tag = query.tag if query is not None else ""
    qpd = query.qpd if query is not None else []
    if error is not None or result is None:
        status = error.ack if error is not None else "AE"
        segments.append(("QAK", [one(tag), one(status), one("Q22", "Find Candidates", "HL7")]))
    else:
        found = len(result.patients)
        total = result.total if result.total is not None else found
        segments.append(
            (
                "QAK",
                [
                    one(tag),
                    one("OK" if found else "NF"),
                    one("Q22", "Find Candidates", "HL7"),
                    one(str(total)),
                    one(str(found)),
                    one(str(max(0, total - found))),
                ],
            )
        )
    if qpd:
        segments.append(("QPD", qpd))
    if error is None and result is not None:
        domains = query.domains if query is not None else None
        for number, patient in enumerate(result.patients, start=1):
            segments.append(("PID", pid_fields(patient, number, domains)))
    return _encode(write_message(segments), header.codec)
