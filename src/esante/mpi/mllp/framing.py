"""MLLP (Minimal Lower Layer Protocol, HL7 v2 transport over TCP): ``<VT> message <FS><CR>``.

A frame starts with the start block 0x0B and ends with 0x1C 0x0D. The reader is strict about sizes (a frame larger
than ``max_bytes`` is refused: the connection is then closed, since the rest of the stream cannot be trusted) and
tells the server what it found, so every case gets an answer:

- a well-formed frame → its payload;
- bytes ending with the end block but without any start block → :class:`Unframed` (answered with a reject: a
  client that forgot the start byte learns why nothing works instead of waiting for ever);
- stray bytes before the start block (CR/LF between frames, line noise) are skipped; their count is reported.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

START = b"\x0b"
END = b"\x1c\x0d"
DEFAULT_MAX_BYTES = 1 << 20  # 1 MiB: far above any ADT or query message


@dataclass(frozen=True)
class Frame:
    payload: bytes
    skipped: int = 0  # stray bytes dropped before the start block


@dataclass(frozen=True)
class Unframed:
    """Data up to an end block, with no start block: not an MLLP frame."""

    size: int


class FrameTooLarge(Exception):
    """No end block within the size limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"no MLLP end block within {limit} bytes")
        self.limit = limit


def frame(payload: bytes) -> bytes:
    return START + payload + END


def stream_limit(max_bytes: int) -> int:
    """The StreamReader buffer limit that lets a frame of ``max_bytes`` (plus its blocks and a little leading noise)
    through and no more."""
    return max_bytes + 16


async def read_frame(reader: asyncio.StreamReader, max_bytes: int = DEFAULT_MAX_BYTES) -> Frame | Unframed | None:
    """The next frame, or None at the end of the stream (a partial frame at the end is dropped: the peer left)."""
    try:
        chunk = await reader.readuntil(END)
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError as error:
        raise FrameTooLarge(max_bytes) from error
    start = chunk.find(START)
    if start < 0:
        return Unframed(len(chunk))
    payload = chunk[start + 1 : -len(END)]
    if len(payload) > max_bytes:
        raise FrameTooLarge(max_bytes)
    return Frame(payload, skipped=start)
