"""IHE MHD 4.x vocabulary (canonical URLs, code systems, the metadata options) and the XDS error codes our
OperationOutcomes carry. Pure: no I/O.

A refused ITI-65 Bundle answers with a 4xx OperationOutcome whose issue names the problem (``diagnostics``), the
element (``expression``) and the XDS-style error code in ``issue.details`` (ITI TF-3 Table 4.2.4.1-2), so a Document
Source written for XDS can react to the same codes.
"""

from __future__ import annotations

import enum

from esante.fhir.errors import FhirError, Issue

MHD = "https://profiles.ihe.net/ITI/MHD"
_SD = f"{MHD}/StructureDefinition"

# the Provide Document Bundle profiles: Bundle.meta.profile names the Document Source's option
MINIMAL_BUNDLE = f"{_SD}/IHE.MHD.Minimal.ProvideBundle"
COMPREHENSIVE_BUNDLE = f"{_SD}/IHE.MHD.Comprehensive.ProvideBundle"
UNCONTAINED_BUNDLE = f"{_SD}/IHE.MHD.UnContained.Comprehensive.ProvideBundle"
RESPONSE_PROFILE = f"{_SD}/IHE.MHD.ProvideDocumentBundleResponse"

# resource profiles (what a resource may declare in its own meta.profile)
MINIMAL_DOCUMENT = f"{_SD}/IHE.MHD.Minimal.DocumentReference"
COMPREHENSIVE_DOCUMENT = f"{_SD}/IHE.MHD.Comprehensive.DocumentReference"
UNCONTAINED_DOCUMENT = f"{_SD}/IHE.MHD.UnContained.Comprehensive.DocumentReference"
MINIMAL_SUBMISSION_SET = f"{_SD}/IHE.MHD.Minimal.SubmissionSet"
COMPREHENSIVE_SUBMISSION_SET = f"{_SD}/IHE.MHD.Comprehensive.SubmissionSet"
UNCONTAINED_SUBMISSION_SET = f"{_SD}/IHE.MHD.UnContained.Comprehensive.SubmissionSet"
MINIMAL_FOLDER = f"{_SD}/IHE.MHD.Minimal.Folder"
COMPREHENSIVE_FOLDER = f"{_SD}/IHE.MHD.Comprehensive.Folder"

# the actors' CapabilityStatements this server instantiates
DOCUMENT_RECIPIENT = f"{MHD}/CapabilityStatement/IHE.MHD.DocumentRecipient"
DOCUMENT_RECIPIENT_COMPREHENSIVE = f"{MHD}/CapabilityStatement/IHE.MHD.DocumentRecipient.Comprehensive"
DOCUMENT_RECIPIENT_UNCONTAINED = f"{MHD}/CapabilityStatement/IHE.MHD.DocumentRecipient.UnContained"
DOCUMENT_RESPONDER = f"{MHD}/CapabilityStatement/IHE.MHD.DocumentResponder"

LIST_TYPES = f"{MHD}/CodeSystem/MHDlistTypes"  # List.code: submissionset | folder
IDENTIFIER_TYPES = f"{MHD}/CodeSystem/IHE.MHD.MHDIdentifierType"  # uniqueId | entryUUID
EXT_SOURCE_ID = f"{_SD}/ihe-sourceId"
EXT_DESIGNATION_TYPE = f"{_SD}/ihe-designationType"
EXT_INTENDED_RECIPIENT = f"{_SD}/ihe-intendedRecipient"
EXT_AUTHOR_ORG = f"{_SD}/ihe-authorOrg"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
RFC3986 = "urn:ietf:rfc:3986"

CONFIDENTIALITY_LEVELS = ("N", "R", "V")  # normal, restricted, very restricted (the DSP's "hidden" is the patient's)


class Option(enum.IntEnum):
    """The metadata option a resource is checked against (higher is stricter)."""

    MINIMAL = 1
    COMPREHENSIVE = 2

    @classmethod
    def of_bundle(cls, profiles: list[str]) -> Option | None:
        if COMPREHENSIVE_BUNDLE in profiles or UNCONTAINED_BUNDLE in profiles:
            return cls.COMPREHENSIVE
        if MINIMAL_BUNDLE in profiles:
            return cls.MINIMAL
        return None

    @classmethod
    def declared(cls, profiles: list[str]) -> Option:
        """The option a resource declares in its own meta.profile (Minimal when it declares none)."""
        strict = {COMPREHENSIVE_DOCUMENT, UNCONTAINED_DOCUMENT, COMPREHENSIVE_SUBMISSION_SET}
        strict |= {UNCONTAINED_SUBMISSION_SET, COMPREHENSIVE_FOLDER}
        return cls.COMPREHENSIVE if strict.intersection(profiles) else cls.MINIMAL


class Xds(enum.StrEnum):
    """XDS error codes (ITI TF-3 Table 4.2.4.1-2) in ``OperationOutcome.issue.details``."""

    REGISTRY_METADATA = "XDSRegistryMetadataError"  # metadata missing, malformed or inconsistent
    REPOSITORY_METADATA = "XDSRepositoryMetadataError"  # the document's own metadata (its media type) refused
    MISSING_DOCUMENT = "XDSMissingDocument"  # a DocumentReference whose document is not in the Bundle
    MISSING_DOCUMENT_METADATA = "XDSMissingDocumentMetadata"  # a document no DocumentReference describes
    UNKNOWN_PATIENT = "XDSUnknownPatientId"  # the patient is not a (certified) identity of the MPI
    PATIENT_MISMATCH = "XDSPatientIdDoesNotMatch"  # resources of one submission for different patients
    NON_IDENTICAL_HASH = "XDSNonIdenticalHash"  # declared hash ≠ the bytes' (or ≠ the registered same uniqueId's)
    NON_IDENTICAL_SIZE = "XDSNonIdenticalSize"  # declared size ≠ the bytes' (or ≠ the registered same uniqueId's)
    DUPLICATE_UNIQUE_ID = "XDSDuplicateUniqueIdInRegistry"  # the uniqueId is registered already
    DEPRECATED_DOCUMENT = "XDSRegistryDeprecatedDocumentError"  # replacing a document that is not current
    INVALID_DOCUMENT_CONTENT = "InvalidDocumentContent"  # the bytes are not what the media type says
    FHIR_DOCUMENT = "FHIRDocumentNotSupported"  # (not raised: the FHIR Document Publish option is supported)
    REGISTRY_ERROR = "XDSRegistryError"  # the DSP refuses documents (closed, refused, ...)


def xds_error(
    status: int, code: Xds, diagnostics: str, *, expression: str | None = None, issue_type: str | None = None
) -> FhirError:
    """A refused submission: one issue carrying the XDS code in ``details``."""
    kind = issue_type or _ISSUE_TYPES.get(code, "processing")
    issue = Issue(kind, diagnostics, expression=(expression,) if expression else (), details_code=code.value)
    return FhirError(status, [issue])


_ISSUE_TYPES = {
    Xds.REGISTRY_METADATA: "invalid",
    Xds.MISSING_DOCUMENT: "required",
    Xds.MISSING_DOCUMENT_METADATA: "required",
    Xds.UNKNOWN_PATIENT: "not-found",
    Xds.DUPLICATE_UNIQUE_ID: "duplicate",
    Xds.REPOSITORY_METADATA: "not-supported",
    Xds.INVALID_DOCUMENT_CONTENT: "invalid",
    Xds.DEPRECATED_DOCUMENT: "conflict",
    Xds.PATIENT_MISMATCH: "conflict",
}


def metadata_error(diagnostics: str, expression: str | None = None) -> FhirError:
    """400: the Bundle's metadata break the MHD rules (XDSRegistryMetadataError)."""
    return xds_error(400, Xds.REGISTRY_METADATA, diagnostics, expression=expression)


def profiles_of(resource: dict[str, object]) -> list[str]:
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    return [p for p in profiles if isinstance(p, str)] if isinstance(profiles, list) else []
