"""eSanté: an open-source national eHealth platform built on one FHIR R4 resource store."""

__version__ = "0.1.0"
