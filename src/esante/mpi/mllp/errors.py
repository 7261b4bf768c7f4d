"""What goes wrong with an HL7 v2 message, as the acknowledgement says it (MSA-1 and the ERR segment).

- ``AR`` (application reject): the message itself cannot be taken — not parseable, wrong encoding characters or
  character set, unsupported message type, event or version. Sending it again unchanged will fail again.
- ``AE`` (application error): the message was understood but its content is refused — a required field missing,
  a bad date, a value outside its table, an unknown identifier domain, the feed's refusal (403, 400...).

The ERR segment carries the location (ERR-2), the HL7 table 0357 code (ERR-3), the severity (ERR-4) and a message
for people (ERR-8); the MSA-3 text repeats it for v2.3 receivers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Code(IntEnum):
    """HL7 table 0357 (message error condition codes)."""

    SEGMENT_SEQUENCE = 100
    REQUIRED_FIELD_MISSING = 101
    DATA_TYPE = 102
    TABLE_VALUE_NOT_FOUND = 103
    UNSUPPORTED_MESSAGE_TYPE = 200
    UNSUPPORTED_EVENT = 201
    UNSUPPORTED_PROCESSING_ID = 202
    UNSUPPORTED_VERSION = 203
    UNKNOWN_KEY = 204
    INTERNAL = 207


TEXTS = {
    Code.SEGMENT_SEQUENCE: "Segment sequence error",
    Code.REQUIRED_FIELD_MISSING: "Required field missing",
    Code.DATA_TYPE: "Data type error",
    Code.TABLE_VALUE_NOT_FOUND: "Table value not found",
    Code.UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    Code.UNSUPPORTED_EVENT: "Unsupported event code",
    Code.UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    Code.UNSUPPORTED_VERSION: "Unsupported version id",
    Code.UNKNOWN_KEY: "Unknown key identifier",
    Code.INTERNAL: "Application internal error",
}


@dataclass(frozen=True)
class Location:
    """ERR-2 (ERL): segment id, its sequence in the message, field, repetition, component."""

    segment: str
    field: int | None = None
    component: int | None = None
    repetition: int = 1
    sequence: int = 1

    def parts(self) -> list[str]:
        values = [self.segment, str(self.sequence)]
        if self.field is not None:
            values += [str(self.field), str(self.repetition)]
            if self.component is not None:
                values.append(str(self.component))
        return values

    def __str__(self) -> str:
        text = f"{self.segment}-{self.field}" if self.field is not None else self.segment
        return f"{text}.{self.component}" if self.component is not None else text


class Hl7Error(Exception):
    """A refused message: AR (rejected) or AE (application error), with its table 0357 code and location."""

    def __init__(self, ack: str, code: Code, text: str, location: Location | None = None) -> None:
        super().__init__(text)
        assert ack in ("AE", "AR")
        self.ack = ack
        self.code = code
        self.text = text
        self.location = location


def reject(code: Code, text: str, location: Location | None = None) -> Hl7Error:
    return Hl7Error("AR", code, text, location)


def app_error(code: Code, text: str, location: Location | None = None) -> Hl7Error:
    return Hl7Error("AE", code, text, location)
