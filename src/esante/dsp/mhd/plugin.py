"""Plugs the DSP's IHE MHD document interfaces into a platform (``install_mhd``).

- ITI-65: the transaction Bundles that are submissions go to :class:`~esante.dsp.mhd.provide.DocumentRecipient`
  (``BundleProcessor.claim``);
- ITI-68: the platform's Binary reads go through :class:`~esante.dsp.mhd.retrieve.DocumentRetriever`
  (``FhirRouter.content_readers``);
- ITI-66 / ITI-67 are the generic search (the IHE SearchParameters are in the core registry);
- a Binary whose content is in the blob store is immutable (a document is replaced, never rewritten);
- a DSP's destruction destroys its documents' blobs (``lifecycle.on_destroy``);
- start-up writes the document classes and the MHD SearchParameters into the store;
- the CapabilityStatement names the MHD Document Recipient (Minimal, Comprehensive, UnContained) and Document
  Responder actors and the MHD profiles.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from esante.blobs import AsyncBlobStore
from esante.db.engine import Connection
from esante.dsp.mhd import model
from esante.dsp.mhd.classes import document_classes
from esante.dsp.mhd.content import ContentPolicy
from esante.dsp.mhd.provide import DocumentRecipient
from esante.dsp.mhd.registry import blob_in_use, blob_of, blobs_of_patient, unlink_blobs
from esante.dsp.mhd.retrieve import DocumentRetriever
from esante.dsp.mhd.submission import is_provide_bundle
from esante.dsp.mhd.terminology import DefinitionsRule, ensure_definitions
from esante.fhir.errors import unprocessable
from esante.fhir.hooks import HookEvent, Pointcut
from esante.fhir.store import ResourceStore, StoreSession

if TYPE_CHECKING:
    from esante.app import Platform


async def require_accepting(conn: Connection, patient_id: str) -> None:
    """The DSP core's gate (``dsp.lifecycle.require_accepting_documents``): 409 when the patient's DSP does not
    accept documents (missing, pending, refused, closed, destroyed)."""
    from esante.dsp.lifecycle import require_accepting_documents

    await require_accepting_documents(conn, patient_id)


# each platform's blob store, by its resource store (a DSP's destruction runs in a session of that store)
_BLOBS: weakref.WeakKeyDictionary[ResourceStore, Callable[[], AsyncBlobStore]] = weakref.WeakKeyDictionary()


async def destroy_blobs(session: StoreSession, patient_id: str) -> Mapping[str, int]:
    """``dsp.lifecycle.on_destroy``: a destroyed DSP's documents lose their blobs (crypto-shredded), unless a
    document of another DSP holds the same bytes; the links go with them, in the destruction's transaction."""
    conn = session.conn
    addresses = await blobs_of_patient(conn, patient_id)
    await unlink_blobs(conn, patient_id)
    blobs = _BLOBS.get(session.store)
    destroyed = 0
    for address in addresses:
        if blobs is not None and not await blob_in_use(conn, address):
            await blobs().delete(address)
            destroyed += 1
    return {"document-blobs": destroyed}


class _LazyBlobs:
    """The platform's blob store, opened at first use (its master keys are read then, not at wiring time)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._store: AsyncBlobStore | None = None

    def __call__(self) -> AsyncBlobStore:
        if self._store is None:
            self._store = AsyncBlobStore.from_settings(self.platform.settings)
        return self._store


def install_mhd(platform: Platform) -> None:
    """Register the MHD Document Recipient and Responder on ``platform`` (see the module docstring)."""
    settings = platform.settings
    classes = document_classes(settings.mhd_document_classes_file)
    policy = ContentPolicy.parse(settings.mhd_content_types, settings.mhd_pdfa_required)
    blobs: Callable[[], AsyncBlobStore] = _LazyBlobs(platform)
    recipient = DocumentRecipient(
        platform.store,
        platform.service,
        platform.router.bundles,
        blobs,
        platform.mpi_engine,
        policy,
        classes,
        require_accepting,
        settings.mhd_patient_match_grade,
    )
    platform.router.bundles.claim(is_provide_bundle, recipient)
    platform.router.content_readers["Binary"] = DocumentRetriever(
        blobs, settings.mhd_serve_superseded, settings.max_body_bytes
    )
    platform.policy.add_rule(DefinitionsRule())

    async def document_content_is_immutable(event: HookEvent) -> None:
        assert event.previous is not None
        if await blob_of(event.session.conn, event.previous.res_id) is not None:
            raise unprocessable(
                "a document's content cannot be changed: submit a new document that replaces it (ITI-65, relatesTo "
                "replaces)",
                expression="Binary",
            )

    platform.hooks.register(Pointcut.STORAGE_PRESTORAGE_UPDATE, document_content_is_immutable, {"Binary"})

    from esante.dsp.lifecycle import on_destroy

    _BLOBS[platform.store] = blobs
    on_destroy(destroy_blobs)

    async def definitions_at_start() -> None:
        await ensure_definitions(platform.store, classes)

    platform.startup.append(definitions_at_start)
    capability = platform.router.capability
    for actor in (
        model.DOCUMENT_RECIPIENT,
        model.DOCUMENT_RECIPIENT_COMPREHENSIVE,
        model.DOCUMENT_RECIPIENT_UNCONTAINED,
        model.DOCUMENT_RESPONDER,
    ):
        capability.instantiate(actor)
    for profile in (model.MINIMAL_DOCUMENT, model.COMPREHENSIVE_DOCUMENT, model.UNCONTAINED_DOCUMENT):
        capability.support_profile("DocumentReference", profile)
    for profile in (
        model.MINIMAL_SUBMISSION_SET,
        model.COMPREHENSIVE_SUBMISSION_SET,
        model.UNCONTAINED_SUBMISSION_SET,
        model.MINIMAL_FOLDER,
        model.COMPREHENSIVE_FOLDER,
    ):
        capability.support_profile("List", profile)
