"""HL7 v2 over MLLP, end to end: the platform and the MLLP listener on loopback, real MLLP clients over sockets.

ADT feeds (A01/A04/A08/A28/A31), the A40 merge and the PDQ query (QBP^Q22 → RSP^K22) reach the store through the
platform's security seam as the establishment's identity source; every malformed message gets its AE/AR with the
ERR segment and changes nothing; framing errors are answered.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hl7.client
import httpx
import pytest

from esante.app import Platform
from esante.db.engine import Database
from esante.mpi.domains import DomainStore
from esante.mpi.mllp.er7 import Message, Segment, parse
from esante.mpi.mllp.framing import END, START
from esante.mpi.mllp.server import MllpServer, MllpService
from esante.mpi.model import LEVEL_SYSTEM
from esante.security.oauth.client_store import ClientStore
from tests.auth import register_client
from tests.live_server import free_port

HOSPITAL = "urn:oid:1.3.182.3.1.1.7.2"
LAB = "urn:oid:1.3.182.3.1.1.9.2"
CHL_CX = "^^^CHL&1.3.182.3.1.1.7.2&ISO^PI"
LAB_CX = "^^^LAB&1.3.182.3.1.1.9.2&ISO^PI"
MAIDEN = "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName"
BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
LEA_PID = (
    "PID|1||H1" + CHL_CX + "||Schmit^Léa^Marie^^^^L~Weber^Léa^^^^^M|Wagner|19820802|F|||"
    "12 rue de l'Alzette^^Esch-sur-Alzette^^L-4011^LU^H||^PRN^PH^^352^^621123456~^NET^Internet^lea@example.lu"
    "||||||||||Differdange"
)


def msh(kind: str, control: str = "C1", charset: str = "UNICODE UTF-8", version: str = "2.5") -> str:
    return f"MSH|^~\\&|HIS|CHL|ESANTE|MPI|20260101120000||{kind}|{control}|P|{version}|||||LU|{charset}"


def adt(event: str, pid: str = LEA_PID, control: str = "C1", *extra: str, charset: str = "UNICODE UTF-8") -> bytes:
    segments = [msh(f"ADT^{event}^ADT_A01", control, charset), f"EVN|{event}|20260101120000", pid, *extra]
    return ("\r".join(segments) + "\r").encode("latin-1" if charset == "8859/1" else "utf-8")


def qbp(*params: str, control: str = "Q1", limit: int | None = None, domains: str = "") -> bytes:
    segments = [
        msh("QBP^Q22^QBP_Q21", control),
        f"QPD|Q22^Find Candidates^HL7|TAG-{control}|{'~'.join(params)}|||||{domains}",
        f"RCP|I|{limit}^RD" if limit is not None else "RCP|I",
    ]
    return ("\r".join(segments) + "\r").encode()


@dataclass
class Answer:
    raw: bytes
    message: Message

    def segment(self, name: str) -> Segment:
        found = self.message.first(name)
        assert found is not None, f"no {name} in {self.raw!r}"
        return found

    @property
    def ack(self) -> str:
        return self.segment("MSA").value(1)

    def err(self) -> tuple[str, str, str]:
        """ERR-3 code, ERR-2 location (segment^sequence^field...) and ERR-8 text."""
        err = self.segment("ERR")
        location = "^".join(c[0] for c in err.field(2)[0]) if err.field(2) else ""
        return err.value(3), location, err.value(8)


class Mllp:
    """A real MLLP client: one TCP connection, one frame out, one frame back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def receive(self) -> Answer:
        data = await asyncio.wait_for(self.reader.readuntil(END), 30)
        assert data.startswith(START), data
        payload = data[1:-2]
        charset = "latin-1" if b"8859/1" in payload.split(b"\r")[0] else "utf-8"
        return Answer(payload, parse(payload.decode(charset)))

    async def send(self, payload: bytes) -> Answer:
        await self.send_raw(START + payload + END)
        return await self.receive()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@dataclass
class Listener:
    platform: Platform
    port: int
    servers: list[MllpServer]

    async def connect(self, port: int | None = None) -> Mllp:
        reader, writer = await asyncio.open_connection("127.0.0.1", port or self.port)
        return Mllp(reader, writer)

    async def start(self, client_id: str, **options: Any) -> int:
        service = MllpService(self.platform, client_id)
        await service.check_client()
        server = MllpServer(service, **options)
        self.servers.append(server)
        return (await server.start("127.0.0.1", 0))[1]


@pytest.fixture
async def mllp(platform: Platform) -> AsyncIterator[Listener]:
    await register_client(platform.database, "chl-his", "system/Patient.cruds")
    await register_client(platform.database, "lab-lis", "system/Patient.cruds")
    domains = DomainStore(platform.database)
    await domains.register(HOSPITAL, "CHL", source_client_id="chl-his")
    await domains.register(LAB, "Laboratoire", source_client_id="lab-lis")
    listener = Listener(platform, 0, [])
    listener.port = await listener.start("chl-his")
    try:
        yield listener
    finally:
        for server in listener.servers:
            await server.close()


async def _identity(client: httpx.AsyncClient, value: str, system: str = HOSPITAL) -> dict[str, Any]:
    bundle = (await client.get("/fhir/Patient", params={"identifier": f"{system}|{value}"})).json()
    (entry,) = bundle["entry"]
    resource: dict[str, Any] = entry["resource"]
    return resource


async def _patients(client: httpx.AsyncClient) -> int:
    total: int = (await client.get("/fhir/Patient", params={"_summary": "count"})).json()["total"]
    return total


async def test_a04_creates_a_provisional_identity_and_a08_revises_it(mllp: Listener, client: httpx.AsyncClient) -> None:
    connection = await mllp.connect()
    try:
        answer = await connection.send(adt("A04", control="MSG-0001"))
        assert answer.ack == "AA", answer.raw
        msh_out = answer.segment("MSH")
        assert msh_out.value(9) == "ACK" and msh_out.value(9, comp=2) == "A04"
        assert answer.segment("MSA").value(2) == "MSG-0001"
        # the answer's sender is the request's receiver and the other way round
        assert (msh_out.value(3), msh_out.value(4), msh_out.value(5), msh_out.value(6)) == (
            "ESANTE",
            "MPI",
            "HIS",
            "CHL",
        )
        assert msh_out.value(18) == "UNICODE UTF-8" and msh_out.value(12) == "2.5"
        assert answer.message.first("ERR") is None

        lea = await _identity(client, "H1")
        assert next(t["code"] for t in lea["meta"]["tag"] if t["system"] == LEVEL_SYSTEM) == "provisional"
        assert lea["name"] == [
            {"use": "official", "family": "Schmit", "given": ["Léa", "Marie"]},
            {"use": "maiden", "family": "Weber", "given": ["Léa"]},
        ]
        assert lea["birthDate"] == "1982-08-02" and lea["gender"] == "female"
        assert lea["address"] == [
            {
                "use": "home",
                "line": ["12 rue de l'Alzette"],
                "city": "Esch-sur-Alzette",
                "postalCode": "L-4011",
                "country": "LU",
            }
        ]
        assert {(t["system"], t["value"]) for t in lea["telecom"]} == {
            ("phone", "+352 621123456"),
            ("email", "lea@example.lu"),
        }
        extensions = {e["url"]: e for e in lea["extension"]}
        assert extensions[MAIDEN]["valueString"] == "Wagner"
        assert extensions[BIRTH_PLACE]["valueAddress"] == {"city": "Differdange"}

        moved = LEA_PID.replace("12 rue de l'Alzette^^Esch-sur-Alzette^^L-4011", "3 Grand-Rue^^Ettelbruck^^L-9050")
        answer = await connection.send(adt("A08", moved, "MSG-0002"))
        assert answer.ack == "AA" and answer.segment("MSH").value(9, comp=2) == "A08"
        revised = await _identity(client, "H1")
        assert revised["id"] == lea["id"] and revised["meta"]["versionId"] == "2"
        assert revised["address"][0]["city"] == "Ettelbruck"

        for number, event in enumerate(("A01", "A28", "A31"), start=2):
            pid = LEA_PID.replace("H1" + CHL_CX, f"H{number}{CHL_CX}")
            assert (await connection.send(adt(event, pid, f"MSG-{event}"))).ack == "AA"
        assert await _patients(client) == 4
    finally:
        await connection.close()


async def test_a40_merges_into_the_survivor(mllp: Listener, client: httpx.AsyncClient) -> None:
    connection = await mllp.connect()
    try:
        assert (await connection.send(adt("A04", control="1"))).ack == "AA"
        second = LEA_PID.replace("H1" + CHL_CX, "H2" + CHL_CX)
        assert (await connection.send(adt("A04", second, "2"))).ack == "AA"
        survivor = await _identity(client, "H1")

        unknown_merged = await connection.send(adt("A40", LEA_PID, "3", "MRG|H404" + CHL_CX))
        assert unknown_merged.ack == "AE" and unknown_merged.err()[:2] == ("204", "MRG^1^1^1")
        unknown_survivor = LEA_PID.replace("H1" + CHL_CX, "H405" + CHL_CX)
        answer = await connection.send(adt("A40", unknown_survivor, "4", "MRG|H2" + CHL_CX))
        assert answer.ack == "AE" and answer.err()[:2] == ("204", "PID^1^3^1")
        no_mrg = await connection.send(adt("A40", LEA_PID, "5"))
        assert no_mrg.ack == "AE" and no_mrg.err()[:2] == ("100", "MRG^1")

        merged = await connection.send(adt("A40", LEA_PID, "6", "MRG|H2" + CHL_CX))
        assert merged.ack == "AA", merged.raw
        retired = await _identity(client, "H2")
        assert retired["active"] is False
        assert retired["link"] == [{"other": {"reference": f"Patient/{survivor['id']}"}, "type": "replaced-by"}]
        assert retired["name"][0]["family"] == "Schmit", "the merged identity keeps its traits"
        # the merged identity is no longer found by PDQ
        found = await connection.send(qbp("@PID.5.1^Schmit"))
        assert [p.value(3) for p in found.message.all("PID")] == ["H1"]
    finally:
        await connection.close()


async def test_qbp_q22_finds_candidates(mllp: Listener, client: httpx.AsyncClient) -> None:
    connection = await mllp.connect()
    try:
        people = [
            ("H1", "Schmit^Léa", "19820802", "F"),
            ("H2", "Schmit^Paul", "19790115", "M"),
            ("H3", "Da Silva^João", "19740911", "M"),
        ]
        for value, name, birth, sex in people:
            pid = f"PID|1||{value}{CHL_CX}~1234567890123^^^RNPP&1.3.182.4.4&ISO^NNLUX||{name}||{birth}|{sex}"
            assert (await connection.send(adt("A04", pid, value))).ack == "AA"

        both = await connection.send(qbp("@PID.5.1^Schmit", control="Q1"))
        assert both.ack == "AA" and both.segment("MSH").value(9) == "RSP"
        assert both.segment("MSH").value(9, comp=2) == "K22"
        qak = both.segment("QAK")
        assert (qak.value(1), qak.value(2), qak.value(3)) == ("TAG-Q1", "OK", "Q22")
        assert (qak.value(4), qak.value(5), qak.value(6)) == ("2", "2", "0")
        assert both.segment("QPD").value(3, rep=1, comp=1) == "@PID.5.1", "the query is echoed"
        pids = both.message.all("PID")
        assert sorted(p.value(3) for p in pids) == ["H1", "H2"]
        assert [p.value(1) for p in pids] == ["1", "2"]
        lea = next(p for p in pids if p.value(3) == "H1")
        assert lea.value(3, comp=4, sub=2) == "1.3.182.3.1.1.7.2" and lea.value(3, comp=4, sub=3) == "ISO"
        assert (lea.value(5), lea.value(5, comp=2), lea.value(7), lea.value(8)) == ("Schmit", "Léa", "19820802", "F")

        limited = await connection.send(qbp("@PID.5.1^Schmit", control="Q2", limit=1))
        qak = limited.segment("QAK")
        assert len(limited.message.all("PID")) == 1 and (qak.value(4), qak.value(5), qak.value(6)) == ("2", "1", "1")

        precise = await connection.send(qbp("@PID.5.1^Schmit", "@PID.7^19790115", "@PID.8^M", control="Q3"))
        assert [p.value(3) for p in precise.message.all("PID")] == ["H2"]
        by_id = await connection.send(qbp("@PID.3.1^H3", "@PID.3.4.2^1.3.182.3.1.1.7.2", control="Q4"))
        assert [p.value(5) for p in by_id.message.all("PID")] == ["Da Silva"]
        accents = await connection.send(qbp("@PID.5.2^Joao", control="Q5"))
        assert [p.value(3) for p in accents.message.all("PID")] == ["H3"]

        # QPD-8: only the identifiers of the domains asked for
        domains = await connection.send(qbp("@PID.3.1^H3", control="Q6", domains="^^^&1.3.182.4.4&ISO"))
        (pid,) = domains.message.all("PID")
        assert [rep[0][0] for rep in pid.repetitions(3)] == ["1234567890123"]

        none = await connection.send(qbp("@PID.5.1^Nobody", control="Q7"))
        assert none.ack == "AA" and none.segment("QAK").value(2) == "NF" and none.message.all("PID") == []

        bad_date = await connection.send(qbp("@PID.7^19821340", control="Q8"))
        assert bad_date.ack == "AE" and bad_date.segment("QAK").value(2) == "AE"
        assert bad_date.err()[:2] == ("102", "QPD^1^3^1^1")
        unknown_field = await connection.send(qbp("@PID.99^x", control="Q9"))
        assert unknown_field.ack == "AE" and unknown_field.err()[0] == "103"
        unknown_domain = await connection.send(qbp("@PID.5.1^Schmit", control="Q10", domains="^^^&1.2.3.4&ISO"))
        assert unknown_domain.ack == "AE" and unknown_domain.err()[:2] == ("204", "QPD^1^8^1^4")
        nothing = await connection.send(qbp(control="Q11"))
        assert nothing.ack == "AE" and nothing.err()[0] == "101"
        bad_limit = await connection.send(qbp("@PID.5.1^Schmit", control="Q12", limit=0))
        assert bad_limit.ack == "AE" and bad_limit.err()[:2] == ("102", "RCP^1^2^1^1")
    finally:
        await connection.close()


def _bad(pid: str) -> bytes:
    return adt("A04", pid, "BAD")


BAD_MESSAGES: list[tuple[str, bytes, str, str, str, str]] = [
    # (case, message, MSA-1, ERR-3 code, ERR-2 location, text fragment)
    ("not HL7", b"hello\r", "AR", "100", "", "does not start with an MSH"),
    (
        "encoding characters",
        b"MSH|^^\\&|HIS|CHL|ESANTE|MPI|20260101||ADT^A04|BAD|P|2.5\rPID|1||H9" + CHL_CX.encode() + b"||X^Y\r",
        "AR",
        "102",
        "MSH^1^2^1",
        "delimiters",
    ),
    (
        "ASCII with a non-ASCII byte",
        adt("A04", charset="ASCII").replace(b"\xc3\xa9", b"\xe9"),
        "AR",
        "102",
        "MSH^1^18^1",
        "not valid ASCII",
    ),
    (
        "UTF-8 with Latin-1 bytes",
        adt("A04").replace(b"\xc3\xa9", b"\xe9"),
        "AR",
        "102",
        "MSH^1^18^1",
        "not valid UNICODE UTF-8",
    ),
    ("unknown charset", adt("A04", charset="UNICODE UTF-32"), "AR", "103", "MSH^1^18^1", "not supported"),
    (
        "message type",
        adt("A04").replace(b"ADT^A04^ADT_A01", b"ORU^R01^ORU_R01"),
        "AR",
        "200",
        "MSH^1^9^1^1",
        "ORU",
    ),
    ("event", adt("A04").replace(b"ADT^A04^ADT_A01", b"ADT^A03^ADT_A03"), "AR", "201", "MSH^1^9^1^2", "A03"),
    ("version", adt("A04").replace(b"|P|2.5|", b"|P|2.1|"), "AR", "203", "MSH^1^12^1", "2.1"),
    ("control id", adt("A04", control=""), "AR", "101", "MSH^1^10^1", "MSH-10"),
    ("missing PID", adt("A04").split(b"\rPID")[0] + b"\r", "AE", "100", "PID^1", "PID segment"),
    ("missing PID-3", _bad("PID|1||||Schmit^Léa||19820802|F"), "AE", "101", "PID^1^3^1", "PID-3"),
    ("PID-3 without OID", _bad("PID|1||H9^^^CHL^PI||Schmit^Léa||19820802|F"), "AE", "102", "PID^1^3^1^4", "OID"),
    ("no name", _bad("PID|1||H9" + CHL_CX + "||||19820802|F"), "AE", "101", "PID^1^5^1", "PID-5"),
    ("impossible date", _bad("PID|1||H9" + CHL_CX + "||Schmit^Léa||19821340|F"), "AE", "102", "PID^1^7^1", "PID-7"),
    ("ISO date", _bad("PID|1||H9" + CHL_CX + "||Schmit^Léa||1982-08-02|F"), "AE", "102", "PID^1^7^1", "PID-7"),
    (
        "death date",
        _bad("PID|1||H9" + CHL_CX + "||Schmit^Léa||1982|F" + "|" * 21 + "2020XX"),
        "AE",
        "102",
        "PID^1^29^1",
        "",
    ),
    ("sex", _bad("PID|1||H9" + CHL_CX + "||Schmit^Léa||19820802|Z"), "AE", "103", "PID^1^8^1", "unknown sex"),
    (
        "unregistered domain",
        _bad("PID|1||H9^^^X&1.3.182.3.1.1.99.2&ISO||Schmit^Léa||19820802|F"),
        "AE",
        "204",
        "PID^1^3^1^4",
        "not a registered identifier domain",
    ),
    (
        "another domain's identity",
        _bad("PID|1||L1" + LAB_CX + "||Schmit^Léa||19820802|F"),
        "AE",
        "207",
        "",
        "(403)",
    ),
]


@pytest.mark.parametrize("case", BAD_MESSAGES, ids=[c[0] for c in BAD_MESSAGES])
async def test_bad_messages_get_ae_or_ar_with_err_and_change_nothing(
    mllp: Listener, client: httpx.AsyncClient, case: tuple[str, bytes, str, str, str, str]
) -> None:
    _name, message, ack, code, location, text = case
    connection = await mllp.connect()
    try:
        answer = await connection.send(message)
        assert answer.ack == ack, answer.raw
        got_code, got_location, got_text = answer.err()
        assert (got_code, got_location) == (code, location), answer.raw
        assert text in got_text, got_text
        assert answer.segment("ERR").value(4) == "E"
        assert answer.segment("MSH").value(9) == "ACK"
        if b"|BAD|" in message:
            assert answer.segment("MSA").value(2) == "BAD"
        # the connection stays usable after a refusal
        assert (await connection.send(adt("A04", control="OK"))).ack == "AA"
    finally:
        await connection.close()
    assert await _patients(client) == 1, "only the good message wrote"


async def test_latin1_messages_are_read_and_answered_in_latin1(mllp: Listener, client: httpx.AsyncClient) -> None:
    connection = await mllp.connect()
    try:
        message = adt("A04", charset="8859/1")
        assert b"L\xe9a" in message
        answer = await connection.send(message)
        assert answer.ack == "AA" and answer.segment("MSH").value(18) == "8859/1"
        assert (await _identity(client, "H1"))["name"][0]["given"] == ["Léa", "Marie"]
        query = qbp("@PID.5.1^Schmit").replace(b"UNICODE UTF-8", b"8859/1")
        found = await connection.send(query)
        assert b"L\xe9a" in found.raw, "the answer is written in the request's character set"
    finally:
        await connection.close()


async def test_only_the_domain_source_feeds_it(mllp: Listener, client: httpx.AsyncClient) -> None:
    lab_port = await mllp.start("lab-lis")
    lab = await mllp.connect(lab_port)
    try:
        refused = await lab.send(adt("A04", control="X1"))
        assert refused.ack == "AE"
        code, _location, text = refused.err()
        assert code == "207" and "403" in text and "only the identity source" in text
        own = await lab.send(adt("A04", "PID|1||L1" + LAB_CX + "||Muller^Anne||19900101|F", "X2"))
        assert own.ack == "AA"
    finally:
        await lab.close()
    assert await _patients(client) == 1


async def test_a_suspended_client_stops_the_feed(mllp: Listener, client: httpx.AsyncClient) -> None:
    connection = await mllp.connect()
    try:
        assert (await connection.send(adt("A04", control="S1"))).ack == "AA"
        await ClientStore(mllp.platform.database).suspend("chl-his", int(time.time()))
        second = LEA_PID.replace("H1" + CHL_CX, "H2" + CHL_CX)
        refused = await connection.send(adt("A04", second, "S2"))
        assert refused.ack == "AE" and "401" in refused.err()[2]
    finally:
        await connection.close()
    assert await _patients(client) == 1


async def test_framing_errors_are_answered(mllp: Listener, client: httpx.AsyncClient) -> None:
    connection = await mllp.connect()
    try:
        # no start block: a reject, and the connection goes on
        await connection.send_raw(adt("A04", control="F1") + END)
        unframed = await connection.receive()
        assert unframed.ack == "AR" and "start block" in unframed.err()[2]
        # noise before the start block (CR LF between frames) is skipped
        answer = await connection.send(b"\r\n" + adt("A04", control="F2"))
        assert answer.ack == "AA" and answer.segment("MSA").value(2) == "F2"
        # two frames in one write, and one frame in many small writes: answers in order
        second = LEA_PID.replace("H1" + CHL_CX, "H2" + CHL_CX)
        await connection.send_raw(START + adt("A08", control="F3") + END + START + adt("A04", second, "F4") + END)
        assert [(await connection.receive()).segment("MSA").value(2) for _ in range(2)] == ["F3", "F4"]
        data = START + adt("A08", control="F5") + END
        for index in range(0, len(data), 7):
            await connection.send_raw(data[index : index + 7])
        assert (await connection.receive()).segment("MSA").value(2) == "F5"
    finally:
        await connection.close()

    small = await mllp.connect(await mllp.start("chl-his", max_bytes=2048))
    try:
        await small.send_raw(START + b"MSH|^~\\&|" + b"X" * 4096)
        oversize = await small.receive()
        assert oversize.ack == "AR" and "larger than 2048 bytes" in oversize.err()[2]
        assert await asyncio.wait_for(small.reader.read(), 10) == b"", "the connection is closed"
    finally:
        await small.close()
    assert await _patients(client) == 2


async def test_a_third_party_mllp_client(mllp: Listener, client: httpx.AsyncClient) -> None:
    """python-hl7's blocking MLLP client (another implementation of the framing) feeds and queries."""

    def exchange(message: bytes) -> bytes:
        with hl7.client.MLLPClient("127.0.0.1", mllp.port) as peer:
            return bytes(peer.send_message(message))

    raw = await asyncio.to_thread(exchange, adt("A04", control="P1"))
    answer = hl7.parse(raw.strip(b"\x0b\x1c\r").decode())
    assert str(answer.segment("MSA")(1)) == "AA" and str(answer.segment("MSA")(2)) == "P1"
    raw = await asyncio.to_thread(exchange, qbp("@PID.5.1^Schmit", control="P2"))
    found = hl7.parse(raw.strip(b"\x0b\x1c\r").decode())
    assert str(found.segment("QAK")(2)) == "OK" and len(found.segments("PID")) == 1
    assert (await _identity(client, "H1"))["gender"] == "female"


async def test_the_esante_mllp_command(database: Database, db_url: str, tmp_path: Path) -> None:
    """``esante mllp`` as its own process: it refuses an unknown client, then serves a real MLLP client."""
    await register_client(database, "chl-his", "system/Patient.cruds")
    await DomainStore(database).register(HOSPITAL, "CHL", source_client_id="chl-his")
    port = free_port()
    env = dict(os.environ, ESANTE_VAR_DIR=str(tmp_path / "var"))
    command = [sys.executable, "-m", "esante.cli", "mllp", "--port", str(port), "--db", db_url]
    unknown = await asyncio.to_thread(
        subprocess.run, [*command, "--client", "nobody"], env=env, capture_output=True, text=True, timeout=60
    )
    assert unknown.returncode == 2 and "not registered" in unknown.stderr
    proc = subprocess.Popen(
        [*command, "--client", "chl-his"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        for _ in range(300):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("esante mllp did not start")
        connection = Mllp(reader, writer)
        try:
            answer = await connection.send(adt("A04", control="CLI-1"))
            assert answer.ack == "AA" and answer.segment("MSA").value(2) == "CLI-1", answer.raw
        finally:
            await connection.close()
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    assert f"127.0.0.1:{port} as client chl-his" in output
    assert "Schmit" not in output and "19820802" not in output, "no health data in the logs"
    assert '"control_id": "CLI-1"' in output
    async with database.read() as conn:
        stored = await conn.fetchval("SELECT COUNT(*) FROM resource WHERE res_type = 'Patient' AND is_current")
        audited = await conn.fetch("SELECT content FROM resource WHERE res_type = 'AuditEvent'")
    assert stored == 1
    assert any(b"chl-his" in bytes(row[0]) for row in audited), "the write is audited as the client"
