"""HL7 v2 messages of the MPI without a socket: ER7 reading (delimiters, escapes, line ends), the PID ↔ Patient
mapping both ways, dates, the actions read from each message and the acknowledgements written."""

from __future__ import annotations

import asyncio

import pytest

from esante.mpi.mllp.er7 import one, parse, write_segment
from esante.mpi.mllp.errors import Code, Location, app_error
from esante.mpi.mllp.framing import END, START, Frame, FrameTooLarge, Unframed, read_frame
from esante.mpi.mllp.messages import Feed, Merge, Query, QueryResult, acknowledgement, query_response, read
from esante.mpi.mllp.pid import parse_date, patient_from_pid, pid_fields

CX = "^^^CHL&1.3.182.3.1.1.7.2&ISO^PI"
HOSPITAL = "urn:oid:1.3.182.3.1.1.7.2"
MSH = "MSH|^~\\&|HIS|CHL|ESANTE|MPI|20260101120000||{kind}|C1|P|2.5|||||LU|UNICODE UTF-8"


def message(kind: str, *segments: str) -> bytes:
    return ("\r".join([MSH.format(kind=kind), *segments]) + "\r").encode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1982", "1982"), ("198208", "1982-08"), ("19820802", "1982-08-02"), ("198208021230", "1982-08-02"),
     ("19820802123045.5+0100", "1982-08-02"), ("20000229", "2000-02-29")],
)  # fmt: skip
def test_dates(value: str, expected: str) -> None:
    assert parse_date(value, Location("PID", 7)) == expected


@pytest.mark.parametrize("value", ["19821340", "19830229", "1982-08-02", "82", "0001", "1982080", "abcd", "19820802T1"])
def test_bad_dates(value: str) -> None:
    with pytest.raises(Exception) as raised:
        parse_date(value, Location("PID", 7))
    assert getattr(raised.value, "code", None) == Code.DATA_TYPE and getattr(raised.value, "ack", None) == "AE"


def test_custom_delimiters_escapes_and_line_ends() -> None:
    text = "MSH#!*$%#HIS#CHL#ESANTE#MPI#20260101##ADT!A04#C1#P#2.5\nPID#1##H1!!!CHL%1.3.182.3.1.1.7.2%ISO#"
    text += "#Dupont$T$Durand!Anne*Martin!Zo$S$e###F"
    parsed = parse(text)
    pid = parsed.all("PID")[0]
    assert pid.value(3, comp=4, sub=2) == "1.3.182.3.1.1.7.2"
    # escapes stand for this message's own delimiters (T: subcomponent '%', S: component '!')
    assert pid.value(5) == "Dupont%Durand" and pid.value(5, rep=2, comp=2) == "Zo!e"
    incoming = read((text + "\r\n").encode())
    assert isinstance(incoming.action, Feed) and incoming.action.key == (HOSPITAL, "H1")
    assert incoming.header.event == "A04"


def test_pid_to_patient_and_back() -> None:
    pid = parse(
        MSH.format(kind="ADT^A04")
        + "\rPID|1||H1"
        + CX
        + "~1982080285657^^^RNPP&1.3.182.4.4&ISO^NNLUX||Schmit^Léa^Marie Anne^Jr^Dr^^L~Weber^^^^^^B"
        + "|Wagner|19820802|F|||12 rue Haute^Bât. B^Esch^^L-4011^LU^H~BP 12^^Esch^^L-4001^LU^M"
        + "||^PRN^CP^^352^621^123456~^NET^Internet^lea@example.lu|+352 44 11 11^WPN^PH"
        + "|||||||||Differdange||||||20240101|Y"
    ).all("PID")[0]
    patient, key = patient_from_pid(pid)
    assert key == (HOSPITAL, "H1")
    assert patient["identifier"] == [
        {"system": HOSPITAL, "value": "H1"},
        {"system": "urn:oid:1.3.182.4.4", "value": "1982080285657"},
    ]
    assert patient["name"] == [
        {"use": "official", "family": "Schmit", "given": ["Léa", "Marie", "Anne"], "prefix": ["Dr"], "suffix": ["Jr"]},
        {"use": "maiden", "family": "Weber"},
    ]
    assert patient["address"] == [
        {"use": "home", "line": ["12 rue Haute", "Bât. B"], "city": "Esch", "postalCode": "L-4011", "country": "LU"},
        {"type": "postal", "line": ["BP 12"], "city": "Esch", "postalCode": "L-4001", "country": "LU"},
    ]
    assert patient["telecom"] == [
        {"system": "phone", "value": "+352 621 123456", "use": "mobile"},
        {"system": "email", "value": "lea@example.lu", "use": "home"},
        {"system": "phone", "value": "+352 44 11 11", "use": "work"},
    ]
    assert patient["deceasedDateTime"] == "2024-01-01" and patient["gender"] == "female"
    # and back: a PDQ answer's PID gives the same Patient
    fields = pid_fields(patient, 1)
    again, _ = patient_from_pid(parse(MSH.format(kind="X") + "\r" + write_segment("PID", fields)).all("PID")[0])
    assert again["identifier"] == patient["identifier"] and again["name"] == patient["name"]
    assert again["birthDate"] == patient["birthDate"] and again["extension"] == patient["extension"]
    assert again["address"] == patient["address"] and again["deceasedDateTime"] == "2024-01-01"
    assert [t["value"] for t in again["telecom"]] == [t["value"] for t in patient["telecom"]]


def test_pid_edge_values() -> None:
    def patient(fields: str) -> dict[str, object]:
        return patient_from_pid(parse(MSH.format(kind="X") + "\rPID|1||H1" + CX + fields).all("PID")[0])[0]

    alive = patient('||Muller^Jos||""|U' + "|" * 22 + "N")
    assert "birthDate" not in alive and alive["gender"] == "unknown" and alive["deceasedBoolean"] is False
    with pytest.raises(Exception, match="PID-29"):
        patient("||Muller^Jos||1950|M" + "|" * 21 + "2020|N")
    with pytest.raises(Exception, match="name type"):
        patient("||Muller^Jos^^^^^Q")


def test_actions() -> None:
    merge = read(message("ADT^A40^ADT_A39", "EVN|A40", "PID|1||H1" + CX + "||X^Y", "MRG|H2" + CX))
    assert merge.action == Merge((HOSPITAL, "H2"), (HOSPITAL, "H1"))
    same = read(message("ADT^A40^ADT_A39", "PID|1||H1" + CX + "||X^Y", "MRG|H1" + CX))
    assert same.error is not None and same.error.location == Location("MRG", 1)
    # v2.3: the event in EVN-1 when MSH-9.2 is empty
    old = read(message("ADT", "EVN|A08|20260101", "PID|1||H1" + CX + "||X^Y").replace(b"|2.5|", b"|2.3|"))
    assert isinstance(old.action, Feed) and old.header.version == "2.3"
    query = read(
        message(
            "QBP^Q22^QBP_Q21",
            "QPD|Q22^Find Candidates^HL7|T1|@PID.5.1.1^Schmit~@PID.8^F~@PID.3.1^H1~@PID.3.4.2^1.3.182.3.1.1.7.2"
            "~@PID.11.3^Esch|||||^^^&1.3.182.4.4&ISO",
            "RCP|I|5^RD",
        )
    )
    assert isinstance(query.action, Query)
    assert query.action.params == [
        ("family", "Schmit"),
        ("gender", "female"),
        ("address-city", "Esch"),
        ("identifier", f"{HOSPITAL}|H1"),
    ]
    assert query.action.limit == 5 and query.action.domains == ["urn:oid:1.3.182.4.4"] and query.action.tag == "T1"
    other = read(message("QBP^Q23^QBP_Q21", "QPD|Q23|T1"))
    assert other.error is not None and other.error.code == Code.UNSUPPORTED_EVENT


def test_acknowledgements() -> None:
    incoming = read(message("ADT^A04^ADT_A01", "PID|1||H1" + CX + "||X^Y"))
    ack = parse(acknowledgement(incoming.header, control_id="A1", now="20260101120001").decode())
    (msh_fields,) = [s.fields for s in ack.segments if s.name == "MSH"]
    assert write_segment("MSH", msh_fields[2:]).startswith(
        "MSH|^~\\&|ESANTE|MPI|HIS|CHL|20260101120001||ACK^A04^ACK|A1"
    )
    error = app_error(Code.DATA_TYPE, "PID-7 is not a date (YYYY[MM[DD]]): '1982^13'", Location("PID", 7))
    raw = acknowledgement(incoming.header, error).decode()
    assert "MSA|AE|C1|" in raw and "ERR||PID^1^7^1|102^Data type error^HL70357|E||||PID-7" in raw
    assert "1982\\S\\13" in raw, "the text is escaped"
    assert parse(raw).all("ERR")[0].value(8).endswith("'1982^13'")
    rsp = query_response(incoming.header, None, QueryResult([]), None).decode()
    assert "QAK||NF|Q22^Find Candidates^HL7|0|0|0" in rsp


def test_an_unknown_charset_is_answered_in_ascii() -> None:
    incoming = read(message("ADT^A04^ADT_A01", "PID|1||H1" + CX + "||Müller^X").replace(b"UNICODE UTF-8", b"KOI8-R"))
    assert incoming.error is not None and incoming.error.ack == "AR"
    assert acknowledgement(incoming.header, incoming.error).isascii()


async def _frames(data: bytes, max_bytes: int = 100) -> list[object]:
    reader = asyncio.StreamReader(limit=max_bytes + 16)
    reader.feed_data(data)
    reader.feed_eof()
    found: list[object] = []
    while True:
        try:
            got = await read_frame(reader, max_bytes)
        except FrameTooLarge:
            found.append("too large")
            break
        if got is None:
            break
        found.append(got)
    return found


async def test_framing() -> None:
    assert await _frames(START + b"a" + END + b"\r\n" + START + b"b" + END + START + b"partial") == [
        Frame(b"a"),
        Frame(b"b", skipped=2),
    ]
    assert await _frames(b"no start" + END) == [Unframed(10)]
    assert await _frames(START + b"x" * 200 + END) == ["too large"]
    assert await _frames(START + b"x" * 99 + END) == [Frame(b"x" * 99)]
    assert one("a", ("b", "c")) == [[["a"], ["b", "c"]]]
