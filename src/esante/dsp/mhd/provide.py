"""IHE MHD ITI-65 Provide Document Bundle, as the Document Recipient: the transaction Bundles the platform
recognises as submissions (an MHD ProvideBundle profile, or a SubmissionSet List) come here instead of the
generic transaction processing (``BundleProcessor.claim``).

1. read and check the Bundle (``submission.py``: structure, MHD metadata, media type, size and SHA-1 of each
   document) — nothing looked up yet;
2. on a read connection: resolve the patient to a certified identity of the MPI and the authors to professionals
   of the HPD (``identities.py``), check the DSP accepts documents and the registry's state (``registry.py``);
3. put each document in the blob store (encrypted at rest); a blob that was not there before is remembered;
4. run the rewritten Bundle as ONE database transaction through the platform's transaction processing (every
   entry through the policy seam, validated, indexed, audited): the Binaries carry no data but the
   ``securityContext`` of their DocumentReference; inside that transaction, after the writes, the checks run
   again under locks, the replaced documents become ``superseded``, and each Binary is linked to its blob
   (``dsp_document_blob``);
5. if anything fails after step 3, the blobs this submission added are destroyed again (unless a committed
   document uses the same bytes): a refused submission leaves no resource and no blob.

The answer is the MHD transaction-response: one entry per request entry, in order, each with its ``response``
(status, location, etag, lastModified); the resources themselves only with ``Prefer: return=representation``.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from esante.blobs import AsyncBlobStore, BlobError, BlobInfo
from esante.dsp.mhd.classes import DocumentClasses
from esante.dsp.mhd.content import ContentPolicy
from esante.dsp.mhd.identities import Person, Registers
from esante.dsp.mhd.model import RESPONSE_PROFILE, Xds, xds_error
from esante.dsp.mhd.registry import RegistryChecks, blob_in_use, link_blob
from esante.dsp.mhd.submission import Document, Entry, Kind, Submission, read_submission
from esante.fhir.context import Outcome, RequestContext
from esante.fhir.errors import FhirError
from esante.fhir.model import micros_to_instant
from esante.fhir.store import ResourceStore, StoreSession

if TYPE_CHECKING:
    from esante.db.engine import Connection
    from esante.fhir.bundles import BeforeCommit, BundleProcessor
    from esante.fhir.service import FhirService
    from esante.mpi.engine import MatchingEngine

log = structlog.get_logger("esante.dsp.mhd")

Accepting = Callable[["Connection", str], Awaitable[None]]

_SUPERSEDE = {
    "resourceType": "Parameters",
    "parameter": [
        {
            "name": "operation",
            "part": [
                {"name": "type", "valueCode": "replace"},
                {"name": "path", "valueString": "DocumentReference.status"},
                {"name": "value", "valueCode": "superseded"},
            ],
        }
    ],
}


@dataclass
class _Stored:
    """A document's blob, and whether this submission put it there (then a failure destroys it again)."""

    document: Document
    info: BlobInfo
    new: bool


@dataclass
class _Plan:
    """What the read phase found: the person, and the resolved Patient entry's answer."""

    person: Person
    patient_response: dict[str, Any] | None = None
    blobs: list[_Stored] = field(default_factory=list)


class DocumentRecipient:
    """The ITI-65 handler (see the module docstring)."""

    def __init__(
        self,
        store: ResourceStore,
        service: FhirService,
        bundles: BundleProcessor,
        blobs: Callable[[], AsyncBlobStore],
        engine: MatchingEngine | None,
        policy: ContentPolicy,
        classes: DocumentClasses,
        accepting: Accepting,
        match_grade: str = "certain",
    ) -> None:
        self.store = store
        self.service = service
        self.bundles = bundles
        self._blobs = blobs
        self.engine = engine
        self.policy = policy
        self.classes = classes
        self.accepting = accepting
        self.match_grade = match_grade

    async def __call__(self, ctx: RequestContext, bundle: dict[str, Any]) -> Outcome:
        submission = read_submission(bundle, self.policy, self.classes)
        async with self.store.database.read() as conn:
            registers = Registers(conn, ctx.base_url, self.engine, self.match_grade)
            plan = await self._resolve(conn, registers, submission)
        blobs = self._blobs()
        try:
            plan.blobs = [await self._put(blobs, document) for document in submission.documents]
            request = _transaction(submission, plan)
            try:
                outcome = await self.bundles.run_transaction(
                    ctx, request.bundle, self._before_commit(ctx, submission, plan, request)
                )
            except FhirError as exc:
                raise _renumbered(exc, request.origin) from exc
        except BaseException:
            await self._discard(blobs, [s for s in plan.blobs if s.new])
            raise
        return _response(ctx, submission, plan, request, outcome)

    # ------------------------------------------------------------------------------------------ read phase
    async def _resolve(self, conn: Connection, registers: Registers, submission: Submission) -> _Plan:
        person = await _patient(registers, submission)
        for document in submission.documents:
            resource = document.resource
            contained = _contained(resource)
            where = document.entry.where
            resource["author"] = [
                await registers.author(a, f"{where}.author[{i}]", contained, person)
                for i, a in enumerate(resource.get("author") or [])
            ]
            if not resource["author"]:
                del resource["author"]
            _drop_unreferenced_contained(resource)
        submission_set = submission.submission_set.resource
        if isinstance(submission_set.get("source"), dict):
            submission_set["source"] = await registers.author(
                submission_set["source"],
                f"{submission.submission_set.where}.source",
                _contained(submission_set),
                person,
            )
            _drop_unreferenced_contained(submission_set)
        await self.accepting(conn, person.patient_id)
        await RegistryChecks(submission, person).run(conn, registers)
        plan = _Plan(person)
        if submission.patient is not None:
            row = await conn.fetchrow(
                "SELECT version_id, last_updated FROM resource WHERE res_type = 'Patient' AND res_id = ?"
                " AND is_current",
                (person.patient_id,),
            )
            assert row is not None
            plan.patient_response = {
                "status": "200 OK",
                "location": f"{person.reference}/_history/{row[0]}",
                "etag": f'W/"{row[0]}"',
                "lastModified": micros_to_instant(int(row[1])),
            }
        return plan

    # ------------------------------------------------------------------------------------------ blobs
    async def _put(self, blobs: AsyncBlobStore, document: Document) -> _Stored:
        data = document.data
        try:
            info = await blobs.put(data, expected_size=len(data))
        except BlobError as exc:
            log.error("blob_put_failed", error_type=type(exc).__name__)
            raise xds_error(
                500,
                Xds.REGISTRY_ERROR,
                "the document could not be stored; nothing was registered",
                issue_type="exception",
            ) from exc
        return _Stored(document, info, new=info.created)

    async def _discard(self, blobs: AsyncBlobStore, added: list[_Stored]) -> None:
        """Destroy the blobs a failed submission created. Race-free (the blob store's use stamps): a blob another
        put relied on since ours (a concurrent submission of the same bytes) is kept; a committed document's link
        is checked too."""
        for stored in added:
            try:
                async with self.store.database.read() as conn:
                    if await blob_in_use(conn, stored.info.address):
                        continue
                await blobs.delete(stored.info.address, last_use=stored.info.use_stamp)
            except Exception as exc:  # the submission's own failure is what the client must see
                log.error("blob_undo_failed", address=stored.info.address, error_type=type(exc).__name__)

    # ------------------------------------------------------------------------------------------ in the transaction
    def _before_commit(
        self, ctx: RequestContext, submission: Submission, plan: _Plan, request: _Request
    ) -> BeforeCommit:
        async def run(session: StoreSession, responses: list[dict[str, Any]]) -> None:
            ids = request.ids(responses)
            conn = session.conn
            checks = RegistryChecks(submission, plan.person)
            await checks.lock(session)
            await session.flush()
            await self.accepting(conn, plan.person.patient_id)
            registers = Registers(conn, ctx.base_url, None)
            await checks.run(conn, registers, exclude=frozenset(ids.values()))
            for stored in plan.blobs:
                document = stored.document
                await link_blob(
                    conn,
                    ids[document.content.index],
                    ids[document.entry.index],
                    plan.person.patient_id,
                    stored.info,
                    document.content_type,
                )
            await self._supersede(session, ctx, submission, registers)

        return run

    async def _supersede(
        self, session: StoreSession, ctx: RequestContext, submission: Submission, registers: Registers
    ) -> None:
        """Every document a new one replaces becomes superseded (unless the Bundle's own PATCH did it)."""
        for document in submission.documents:
            for target in document.relations("replaces"):
                res_id = registers.local_id(target, "DocumentReference")
                if res_id is None:
                    continue
                current = await session.read("DocumentReference", res_id)
                if current is None or current.deleted or current.content is None:
                    raise xds_error(
                        422, Xds.DEPRECATED_DOCUMENT, f"DocumentReference/{res_id} disappeared during the submission"
                    )
                if b'"status":"superseded"' in current.content:
                    continue
                await self.service.patch(
                    session, ctx, "DocumentReference", res_id, copy.deepcopy(_SUPERSEDE), "application/fhir+json"
                )


# ---------------------------------------------------------------------------------------------- the patient


async def _patient(registers: Registers, submission: Submission) -> Person:
    """The one certified person of the submission; every subject (and, without one, sourcePatientInfo) names it."""
    carried: dict[str, dict[str, Any]] = {}
    if submission.patient is not None and submission.patient.full_url:
        carried[submission.patient.full_url] = submission.patient.resource
    found: dict[str, Person] = {}
    cache: dict[str, Person] = {}

    async def resolve(reference: dict[str, Any], where: str, contained: dict[str, dict[str, Any]]) -> Person:
        key = str(reference.get("reference") or reference.get("identifier"))
        local = {**carried, **{f"#{k}": v for k, v in contained.items()}}
        if key in cache and not key.startswith("#"):
            return cache[key]
        person = await registers.patient_by_reference(reference, where, local)
        cache[key] = person
        return person

    subjects: list[tuple[Entry, dict[str, Any] | None]] = []
    for entry in [submission.submission_set, *submission.folders, *(d.entry for d in submission.documents)]:
        resource = entry.resource
        where = entry.where
        subject = resource.get("subject")
        if isinstance(subject, dict):
            person = await resolve(subject, f"{where}.subject", _contained(resource))
        elif entry.kind is Kind.DOCUMENT and isinstance((resource.get("context") or {}).get("sourcePatientInfo"), dict):
            source = resource["context"]["sourcePatientInfo"]
            person = await resolve(source, f"{where}.context.sourcePatientInfo", _contained(resource))
        else:
            subjects.append((entry, None))
            continue
        found.setdefault(person.patient_id, person)
        if len(found) > 1:
            raise xds_error(
                422,
                Xds.PATIENT_MISMATCH,
                "the resources of one submission are about different patients (XDS: one patient per SubmissionSet)",
                expression=f"{where}.subject",
            )
        subjects.append((entry, subject))
    carried_person = None
    if submission.patient is not None:  # the Patient of the Bundle is the submission's patient too
        reference = {"reference": submission.patient.full_url} if submission.patient.full_url else None
        if reference is not None:
            carried_person = await resolve(reference, submission.patient.where, {})
        else:
            carried_person = await registers.patient_by_resource(submission.patient.resource, submission.patient.where)
        found.setdefault(carried_person.patient_id, carried_person)
    if not found:
        raise xds_error(
            422,
            Xds.UNKNOWN_PATIENT,
            "the submission names no patient (DocumentReference.subject, List.subject or sourcePatientInfo)",
            expression=f"{submission.submission_set.where}.subject",
        )
    if len(found) > 1:
        raise xds_error(
            422, Xds.PATIENT_MISMATCH, "the Patient of the Bundle is not the submission's patient",
            expression=submission.patient.where if submission.patient else None,
        )  # fmt: skip
    person = next(iter(found.values()))
    for entry, _subject in subjects:
        entry.resource["subject"] = {"reference": person.reference}
    return person


def _contained(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        str(c["id"]): c for c in resource.get("contained") or [] if isinstance(c, dict) and isinstance(c.get("id"), str)
    }


def _local_references(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str) and item.startswith("#"):
                found.add(item[1:])
            elif key != "contained":
                _local_references(item, found)
    elif isinstance(value, list):
        for item in value:
            _local_references(item, found)


def _drop_unreferenced_contained(resource: dict[str, Any]) -> None:
    """Contained resources nothing refers to any more (a contained author replaced by the HPD's reference)."""
    if not resource.get("contained"):
        return
    used: set[str] = set()
    _local_references(resource, used)
    for contained in resource["contained"]:  # contained resources may refer to each other
        if contained.get("id") in used:
            _local_references(contained, used)
    kept = [c for c in resource["contained"] if c.get("id") in used]
    if kept:
        resource["contained"] = kept
    else:
        del resource["contained"]


# ---------------------------------------------------------------------------------------------- the transaction


@dataclass
class _Request:
    """The Bundle handed to the transaction processing, and where each of its entries came from."""

    bundle: dict[str, Any]
    origin: list[int]  # position in ``bundle`` → index of the submitted entry

    def ids(self, responses: list[dict[str, Any]]) -> dict[int, str]:
        """Submitted entry index → the id its resource got (from the response locations)."""
        found: dict[int, str] = {}
        for position, response in enumerate(responses):
            location = str((response.get("response") or {}).get("location", ""))
            path = location.split("/_history/")[0]
            if path:
                found[self.origin[position]] = path.rsplit("/", 1)[-1]
        return found


def _transaction(submission: Submission, plan: _Plan) -> _Request:
    """The submitted Bundle as the platform stores it: documents out of the Binaries (they are in the blob store),
    a Binary's ``securityContext`` its DocumentReference, the Patient entry resolved (not written), the
    DocumentReferences before the Binaries (a Binary's securityContext is checked against its document)."""
    patient_url = submission.patient.full_url if submission.patient is not None else None
    for document in submission.documents:
        if not document.entry.full_url:
            document.entry.full_url = f"urn:uuid:{uuid.uuid4()}"
    content_of = {d.content.index: d for d in submission.documents}
    order = {Kind.SUBMISSION_SET: 0, Kind.FOLDER: 1, Kind.DOCUMENT: 2, Kind.BINARY: 3, Kind.FHIR_DOCUMENT: 3}
    entries: list[dict[str, Any]] = []
    origin: list[int] = []
    for entry in sorted(submission.entries, key=lambda e: (order.get(e.kind, 4), e.index)):
        if entry.kind is Kind.PATIENT:
            continue
        resource = entry.resource
        url = entry.url
        if entry.kind in (Kind.BINARY, Kind.FHIR_DOCUMENT):
            document = content_of[entry.index]
            binary: dict[str, Any] = {"resourceType": "Binary", "contentType": document.content_type}
            meta = {k: v for k, v in (resource.get("meta") or {}).items() if k in ("security", "tag")}
            if entry.kind is Kind.BINARY and meta:
                binary["meta"] = meta
            binary["securityContext"] = {"reference": document.entry.full_url}
            resource, url = binary, "Binary"
        if patient_url is not None:
            resource = _replace_reference(resource, patient_url, plan.person.reference)
        raw: dict[str, Any] = {"resource": resource, "request": {"method": entry.method, "url": url}}
        if entry.full_url:
            raw["fullUrl"] = entry.full_url
        entries.append(raw)
        origin.append(entry.index)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    return _Request(bundle, origin)


_ENTRY = re.compile(r"Bundle\.entry\[(\d+)\]")


def _renumbered(error: FhirError, origin: list[int]) -> FhirError:
    """An error of the rewritten Bundle, naming the entries by their index in the submitted one."""

    def fix(text: str) -> str:
        return _ENTRY.sub(lambda m: f"Bundle.entry[{origin[int(m.group(1))]}]" if int(m.group(1)) < len(origin)
                          else m.group(0), text)  # fmt: skip

    issues = [
        dataclasses.replace(i, diagnostics=fix(i.diagnostics), expression=tuple(fix(e) for e in i.expression))
        for i in error.issues
    ]
    return FhirError(error.status, issues, error.headers)


def _replace_reference(value: Any, old: str, new: str) -> Any:
    if isinstance(value, dict):
        return {
            k: (new if k == "reference" and v == old else _replace_reference(v, old, new)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_replace_reference(v, old, new) for v in value]
    return value


# ---------------------------------------------------------------------------------------------- the response


def _response(ctx: RequestContext, submission: Submission, plan: _Plan, request: _Request, outcome: Outcome) -> Outcome:
    assert isinstance(outcome.body, dict)
    answered = {request.origin[i]: e for i, e in enumerate(outcome.body.get("entry", []))}
    warnings = {d.entry.index: d.warnings for d in submission.documents if d.warnings}
    entries: list[dict[str, Any]] = []
    for entry in submission.entries:
        if entry.kind is Kind.PATIENT:
            assert plan.patient_response is not None
            entries.append({"response": dict(plan.patient_response)})
            continue
        produced = answered[entry.index]
        shaped: dict[str, Any] = {}
        if ctx.prefer_return == "representation" and "resource" in produced:
            shaped["fullUrl"] = produced.get("fullUrl")
            shaped["resource"] = produced["resource"]
        shaped["response"] = dict(produced["response"])
        if entry.index in warnings:
            issues = [
                {"severity": "warning", "code": "informational", "diagnostics": text} for text in warnings[entry.index]
            ]
            shaped["response"]["outcome"] = {"resourceType": "OperationOutcome", "issue": issues}
        entries.append({k: v for k, v in shaped.items() if v is not None})
    body = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [RESPONSE_PROFILE]},
        "type": "transaction-response",
        "link": [{"relation": "self", "url": ctx.base_url}],
        "entry": entries,
    }
    return Outcome(200, body, touched=outcome.touched)
