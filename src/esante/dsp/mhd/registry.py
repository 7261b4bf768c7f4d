"""What the registry already holds, checked against a submission: uniqueIds, the documents a new one replaces or
relates to, the Folders it updates; and the link from each stored Binary to its blob (table
``dsp_document_blob``).

Every check runs twice: on a read connection before the documents are put in the blob store (a refusal then costs
no disk write), and inside the transaction that writes the resources (``before_commit``), under a transaction lock
per uniqueId, so that two concurrent submissions cannot both register the same uniqueId.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from esante.blobs import BlobInfo
from esante.db.engine import Connection
from esante.dsp.mhd.identities import Person, Registers
from esante.dsp.mhd.model import IDENTIFIER_TYPES, Xds, metadata_error, xds_error
from esante.dsp.mhd.submission import Document, Entry, Kind, Submission
from esante.fhir.store import StoreSession


async def _current(conn: Connection, res_type: str, res_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT content FROM resource WHERE res_type = ? AND res_id = ? AND is_current AND NOT deleted",
        (res_type, res_id),
    )
    if row is None or row[0] is None:
        return None
    content: dict[str, Any] = orjson.loads(bytes(row[0]))
    return content


async def _ids_with_identifier(conn: Connection, res_type: str, value: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT DISTINCT r.res_id FROM idx_token t JOIN resource r ON r.rid = t.rid AND r.is_current AND NOT r.deleted"
        " WHERE t.res_type = ? AND t.param = 'identifier' AND t.code = ?",
        (res_type, value),
    )
    return [str(row[0]) for row in rows]


def _subject_of(resource: dict[str, Any]) -> str | None:
    reference = (resource.get("subject") or {}).get("reference")
    return reference if isinstance(reference, str) else None


@dataclass
class RegistryChecks:
    """The checks of a submission against the registry (see the module docstring)."""

    submission: Submission
    person: Person

    async def run(self, conn: Connection, registers: Registers, *, exclude: frozenset[str] = frozenset()) -> None:
        """Raise the first conflict. ``exclude``: the ids this very submission wrote, when run inside its
        transaction (after its writes: a replaced document is superseded and a Folder updated by then)."""
        written = bool(exclude)
        for document in self.submission.documents:
            await self._unique(conn, document, exclude)
            await self._relations(conn, registers, document, written)
        await self._submission_set_unique(conn, exclude)
        for folder in self.submission.folders:
            await self._folder(conn, registers, folder, exclude, written)

    async def lock(self, session: StoreSession) -> None:
        """Serialise the submissions of the same uniqueIds until the transaction ends."""
        for value in sorted({d.unique_id for d in self.submission.documents}):
            await session.lock_condition("DocumentReference", f"uniqueId={value}")

    async def _unique(self, conn: Connection, document: Document, exclude: frozenset[str]) -> None:
        where = f"{document.entry.where}.masterIdentifier"
        value = document.unique_id
        for res_id in await _ids_with_identifier(conn, "DocumentReference", value):
            if res_id in exclude:
                continue
            existing = await _current(conn, "DocumentReference", res_id)
            if existing is None or (existing.get("masterIdentifier") or {}).get("value") != value:
                continue
            attachment = _document_attachment(existing)
            mine = document.resource["content"][document.position]["attachment"]
            if attachment.get("hash") is not None and attachment.get("hash") != mine.get("hash"):
                raise xds_error(
                    422,
                    Xds.NON_IDENTICAL_HASH,
                    f"the uniqueId {value} is registered already (DocumentReference/{res_id}) for a document with "
                    "another hash",
                    expression=where,
                )
            if attachment.get("size") is not None and attachment.get("size") != mine.get("size"):
                raise xds_error(
                    422,
                    Xds.NON_IDENTICAL_SIZE,
                    f"the uniqueId {value} is registered already (DocumentReference/{res_id}) for a document of "
                    "another size",
                    expression=where,
                )
            raise xds_error(
                422,
                Xds.DUPLICATE_UNIQUE_ID,
                f"the uniqueId {value} is registered already (DocumentReference/{res_id})",
                expression=where,
            )

    async def _submission_set_unique(self, conn: Connection, exclude: frozenset[str]) -> None:
        entry = self.submission.submission_set
        for i, identifier in enumerate(entry.resource.get("identifier") or []):
            if not _is_unique_id(identifier) or not identifier.get("value"):
                continue
            value = str(identifier["value"])
            for res_id in await _ids_with_identifier(conn, "List", value):
                if res_id in exclude:
                    continue
                existing = await _current(conn, "List", res_id)
                if existing is not None and any(
                    _is_unique_id(other) and other.get("value") == value for other in existing.get("identifier") or []
                ):
                    raise xds_error(
                        422,
                        Xds.DUPLICATE_UNIQUE_ID,
                        f"the SubmissionSet uniqueId {value} is registered already (List/{res_id})",
                        expression=f"{entry.where}.identifier[{i}]",
                    )

    async def _relations(self, conn: Connection, registers: Registers, document: Document, written: bool) -> None:
        urls = self.submission.by_full_url()
        for i, relation in enumerate(document.resource.get("relatesTo") or []):
            where = f"{document.entry.where}.relatesTo[{i}].target"
            reference = str(relation["target"]["reference"])
            if reference in urls:
                if urls[reference].kind is not Kind.DOCUMENT:
                    raise metadata_error(f"relatesTo.target {reference} is not a DocumentReference", where)
                continue
            res_id = registers.local_id(reference, "DocumentReference")
            if res_id is None:
                raise metadata_error(f"relatesTo.target {reference} is not a DocumentReference of this server", where)
            target = await _current(conn, "DocumentReference", res_id)
            if target is None:
                raise metadata_error(f"DocumentReference/{res_id} (relatesTo.target) is not registered", where)
            if _subject_of(target) != self.person.reference:
                raise xds_error(
                    422,
                    Xds.PATIENT_MISMATCH,
                    f"DocumentReference/{res_id} (relatesTo.target) is a document of another patient",
                    expression=where,
                )
            if relation.get("code") == "replaces" and target.get("status") != "current" and not written:
                raise xds_error(
                    422,
                    Xds.DEPRECATED_DOCUMENT,
                    f"DocumentReference/{res_id} is '{target.get('status')}': only a current document is replaced",
                    expression=where,
                )

    async def _folder(
        self, conn: Connection, registers: Registers, folder: Entry, exclude: frozenset[str], written: bool
    ) -> None:
        where = folder.where
        for i, item in enumerate(folder.resource.get("entry") or []):
            reference = str(item["item"]["reference"])
            res_id = registers.local_id(reference, "DocumentReference")
            if res_id is None or res_id in exclude:
                continue
            target = await _current(conn, "DocumentReference", res_id)
            if target is None:
                raise metadata_error(f"{reference} (a Folder entry) is not registered", f"{where}.entry[{i}].item")
            if _subject_of(target) != self.person.reference:
                raise xds_error(
                    422,
                    Xds.PATIENT_MISMATCH,
                    f"{reference} is a document of another patient",
                    expression=f"{where}.entry[{i}]",
                )
        if folder.method != "PUT" or not isinstance(folder.resource.get("id"), str) or written:
            return
        existing = await _current(conn, "List", str(folder.resource["id"]))
        if existing is None:
            return
        if not any(c.get("code") == "folder" for c in (existing.get("code") or {}).get("coding", [])):
            raise metadata_error(f"List/{folder.resource['id']} is not a Folder", where)
        if _subject_of(existing) != self.person.reference:
            raise xds_error(422, Xds.PATIENT_MISMATCH, "the Folder belongs to another patient", expression=where)
        kept = {str((e.get("item") or {}).get("reference")) for e in folder.resource.get("entry") or []}
        missing = [
            str((e.get("item") or {}).get("reference"))
            for e in existing.get("entry") or []
            if str((e.get("item") or {}).get("reference")) not in kept
        ]
        if missing:
            raise metadata_error(
                f"an update of a Folder only adds entries; it would remove {', '.join(missing)}", f"{where}.entry"
            )


def _is_unique_id(identifier: dict[str, Any]) -> bool:
    codings = (identifier.get("type") or {}).get("coding", [])
    return any(c.get("system") == IDENTIFIER_TYPES and c.get("code") == "uniqueId" for c in codings)


def _document_attachment(document: dict[str, Any]) -> dict[str, Any]:
    """The attachment of a registered document's own content (the one with a hash or a size)."""
    for content in document.get("content") or []:
        attachment = content.get("attachment") or {}
        if "hash" in attachment or "size" in attachment:
            return dict(attachment)
    return {}


# ------------------------------------------------------------------------------------------ the blob links


async def link_blob(
    conn: Connection, binary_id: str, document_id: str, patient_id: str, info: BlobInfo, content_type: str
) -> None:
    """Record that ``Binary/binary_id`` (the document of ``DocumentReference/document_id``, in the DSP of
    ``Patient/patient_id``) is the blob ``info``."""
    await conn.execute(
        "INSERT INTO dsp_document_blob (binary_id, document_id, patient_id, address, size, sha1, content_type,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (binary_id, document_id, patient_id, info.address, info.size, info.sha1, content_type, int(time.time())),
    )


@dataclass(frozen=True)
class BlobLink:
    binary_id: str
    document_id: str
    address: str
    size: int
    sha1: str
    content_type: str


async def blob_of(conn: Connection, binary_id: str) -> BlobLink | None:
    row = await conn.fetchrow(
        "SELECT binary_id, document_id, address, size, sha1, content_type FROM dsp_document_blob WHERE binary_id = ?",
        (binary_id,),
    )
    if row is None:
        return None
    return BlobLink(str(row[0]), str(row[1]), str(row[2]), int(row[3]), str(row[4]), str(row[5]))


async def blob_in_use(conn: Connection, address: str) -> bool:
    """Whether a committed document refers to the blob at ``address`` (it must not be destroyed then)."""
    return await conn.fetchval("SELECT 1 FROM dsp_document_blob WHERE address = ? LIMIT 1", (address,)) is not None


async def blobs_of_patient(conn: Connection, patient_id: str) -> list[str]:
    """The addresses of the blobs of every document filed in the DSP of ``Patient/patient_id``."""
    rows = await conn.fetch("SELECT DISTINCT address FROM dsp_document_blob WHERE patient_id = ?", (patient_id,))
    return sorted(str(row[0]) for row in rows)


async def unlink_blobs(conn: Connection, patient_id: str) -> int:
    """Forget the blob links of a patient's documents (their DSP is destroyed); returns how many."""
    return int(await conn.execute("DELETE FROM dsp_document_blob WHERE patient_id = ?", (patient_id,)))
