"""What a DSP document may be, checked on the bytes: the accepted media types, a light check that the bytes are
what the media type says, and the declared size and SHA-1 against the bytes. Pure: no I/O.

The DSP stores "PDF/A or structured (FHIR/CDA)" documents (PLATFORM.md). The default list (setting
``mhd_content_types``): ``application/pdf`` (a PDF/A: its XMP metadata must declare ``pdfaid:part`` while
``mhd_pdfa_required`` holds; full PDF/A validation, as veraPDF does, is not attempted), ``text/plain`` (UTF-8 or the
declared charset: the guide's own examples are plain text), FHIR in JSON or XML (``application/fhir+json``,
``application/fhir+xml``) and CDA (``application/hl7-v3+xml``, ``text/xml``, ``application/xml``).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import orjson

from esante.dsp.mhd.model import Xds, xds_error

IMAGE_LINK_TYPES = frozenset({"application/dicom", "application/dicom+json", "application/dicom+xml"})
_XML_TYPES = frozenset({"application/fhir+xml", "application/hl7-v3+xml", "text/xml", "application/xml"})
_JSON_TYPES = frozenset({"application/fhir+json", "application/json"})
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


def media_type(content_type: str) -> str:
    """The type/subtype of a Content-Type value, lower case, without its parameters."""
    return content_type.split(";", 1)[0].strip().lower()


def charset(content_type: str) -> str | None:
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return None


@dataclass(frozen=True)
class ContentPolicy:
    """The media types accepted and how strictly PDFs are checked."""

    accepted: frozenset[str]
    pdfa_required: bool = True

    @classmethod
    def parse(cls, types: str, pdfa_required: bool = True) -> ContentPolicy:
        accepted = frozenset(media_type(t) for t in types.split(",") if t.strip())
        if not accepted:
            raise ValueError("mhd_content_types names no media type")
        return cls(accepted, pdfa_required)

    def check(self, content_type: str, data: bytes, where: str) -> None:
        """Refuse a media type outside the list (422 XDSRepositoryMetadataError) and bytes that are not what it
        says (422 InvalidDocumentContent)."""
        kind = media_type(content_type)
        if kind not in self.accepted:
            raise xds_error(
                422,
                Xds.REPOSITORY_METADATA,
                f"documents of type '{kind}' are not accepted by the DSP; accepted: {', '.join(sorted(self.accepted))}",
                expression=where,
            )
        problem = _content_problem(kind, content_type, data, self.pdfa_required)
        if problem:
            raise xds_error(
                422, Xds.INVALID_DOCUMENT_CONTENT, f"the document is not valid {kind}: {problem}", expression=where
            )


def _content_problem(kind: str, content_type: str, data: bytes, pdfa_required: bool) -> str | None:
    if kind == "application/pdf":
        if not data.startswith(b"%PDF-"):
            return "it does not start with the PDF header '%PDF-'"
        if pdfa_required and b"pdfaid:part" not in data:
            return "it does not declare PDF/A conformance (no pdfaid:part in its XMP metadata)"
        return None
    if kind.startswith("text/") and kind not in _XML_TYPES:
        try:
            data.decode(charset(content_type) or "utf-8")
        except (UnicodeDecodeError, LookupError):
            return f"its bytes are not {charset(content_type) or 'UTF-8'} text"
        return None
    if kind in _XML_TYPES:
        head = _strip_bom(data).lstrip()
        if not head.startswith(b"<"):
            return "it does not start with an XML element or declaration"
        if kind == "application/fhir+xml" and b"http://hl7.org/fhir" not in head[:4096]:
            return "its root element is not in the FHIR namespace http://hl7.org/fhir"
        return None
    if kind in _JSON_TYPES:
        try:
            parsed = orjson.loads(_strip_bom(data))
        except orjson.JSONDecodeError:
            return "it is not JSON"
        if kind == "application/fhir+json" and not (isinstance(parsed, dict) and "resourceType" in parsed):
            return "it is not a FHIR resource (no resourceType)"
    return None


def _strip_bom(data: bytes) -> bytes:
    for bom in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :]
    return data


def sha1_base64(data: bytes) -> str:
    """The SHA-1 of ``data`` as FHIR ``Attachment.hash`` carries it."""
    return base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode("ascii")


def declared_hash(value: object, where: str) -> bytes:
    """The SHA-1 an attachment declares (base64Binary of the 20 bytes; 40 hex digits are tolerated)."""
    if isinstance(value, str):
        text = value.strip()
        if len(text) == 40:
            try:
                return bytes.fromhex(text)
            except ValueError:
                pass
        try:
            digest = base64.b64decode(text, validate=True)
        except ValueError:
            digest = b""
        if len(digest) == 20:
            return digest
    raise xds_error(
        400,
        Xds.REGISTRY_METADATA,
        "attachment.hash must be the base64 SHA-1 of the document (20 bytes)",
        expression=where,
    )


def check_declared(attachment: dict[str, object], data: bytes, where: str) -> str | None:
    """The attachment's ``hash`` and ``size``, when given, against the bytes: 422 XDSNonIdenticalHash when the
    SHA-1 differs; 422 XDSNonIdenticalSize when the size differs and no hash vouches for the bytes. A size that
    differs while the hash matches is corrected in place (the SHA-1 proves the bytes; the guide's own Replace
    example declares 24 bytes for 23): the warning text is returned for the entry's response."""
    if "hash" in attachment:
        expected = declared_hash(attachment["hash"], f"{where}.hash")
        actual = hashlib.sha1(data, usedforsecurity=False).digest()
        if expected != actual:
            raise xds_error(
                422,
                Xds.NON_IDENTICAL_HASH,
                f"attachment.hash {base64.b64encode(expected).decode()} is not the SHA-1 of the document "
                f"({base64.b64encode(actual).decode()})",
                expression=f"{where}.hash",
            )
    size = attachment.get("size")
    if size is None or size == len(data):
        return None
    if "hash" not in attachment:
        raise xds_error(
            422,
            Xds.NON_IDENTICAL_SIZE,
            f"attachment.size says {size} bytes but the document has {len(data)}",
            expression=f"{where}.size",
        )
    attachment["size"] = len(data)
    return f"attachment.size said {size} bytes; the document (whose SHA-1 matches) has {len(data)}: size corrected"


def decode_base64(value: object, where: str) -> bytes:
    """Binary.data: standard base64 (whitespace tolerated, as FHIR's base64Binary allows)."""
    if not isinstance(value, str):
        raise xds_error(400, Xds.MISSING_DOCUMENT, "the Binary carries no data (the document itself)", expression=where)
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except ValueError as exc:
        raise xds_error(400, Xds.REGISTRY_METADATA, "Binary.data is not valid base64", expression=where) from exc
