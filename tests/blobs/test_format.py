"""The on-disk format's pure parts: header, nonces, lengths, records."""

from __future__ import annotations

import pytest

from esante.blobs.format import (
    HEADER_SIZE,
    FormatError,
    Header,
    KeyRecord,
    Manifest,
    data_object_size,
    is_address,
    is_kid,
    segment_count,
    segment_nonce,
)


def test_header_round_trip_and_layout() -> None:
    header = Header(65536, b"\x01\x02\x03\x04\x05\x06\x07")
    raw = header.encode()
    assert len(raw) == HEADER_SIZE == 20
    assert raw[:6] == b"ESBLOB" and raw[6] == 1 and raw[7] == 1
    assert raw[8:12] == (65536).to_bytes(4, "big") and raw[12:19] == b"\x01\x02\x03\x04\x05\x06\x07"
    assert Header.decode(raw) == header


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"ESBLOB\x01", "shorter than"),
        (b"NOTBLB" + bytes(14), "bad magic"),
        (b"ESBLOB\x02\x01" + bytes(12), "unsupported"),
        (b"ESBLOB\x01\x01" + (16).to_bytes(4, "big") + bytes(8), "out of range"),
    ],
)
def test_bad_headers_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        Header.decode(raw)


def test_nonce_is_prefix_counter_and_final_flag() -> None:
    prefix = bytes(range(7))
    assert segment_nonce(prefix, 0, False) == prefix + b"\x00\x00\x00\x00\x00"
    assert segment_nonce(prefix, 258, True) == prefix + b"\x00\x00\x01\x02\x01"
    with pytest.raises(ValueError):
        segment_nonce(prefix, 2**32, False)


@pytest.mark.parametrize(
    ("size", "segments"), [(0, 1), (1, 1), (4096, 1), (4097, 2), (8192, 2), (8193, 3), (10 * 4096, 10)]
)
def test_segment_count_and_object_size(size: int, segments: int) -> None:
    assert segment_count(size, 4096) == segments
    assert data_object_size(size, 4096) == HEADER_SIZE + size + 16 * segments


def test_names() -> None:
    assert is_address("a" * 64) and not is_address("A" * 64) and not is_address("a" * 63)
    assert not is_address("../" + "a" * 61)
    assert is_kid("k-2025.01_a") and not is_kid("") and not is_kid("a b") and not is_kid("k" * 65)


def test_records_round_trip_and_refuse_garbage() -> None:
    record = KeyRecord("k1", "00" * 8, b"n" * 12, b"w" * 48, b"m" * 12, b"x" * 90)
    assert KeyRecord.decode(record.encode()) == record
    manifest = Manifest(5, b"1" * 20, b"2" * 32, 4096, 1_700_000_000)
    assert Manifest.decode(manifest.encode()) == manifest
    for raw in (b"not json", b"[]", b'{"format": 2}', b'{"format": 1, "kid": "k1"}'):
        with pytest.raises(FormatError):
            KeyRecord.decode(raw)
    with pytest.raises(FormatError, match="base64"):
        KeyRecord.decode(record.encode().replace(b'"wrap_nonce":"', b'"wrap_nonce":"!!'))
