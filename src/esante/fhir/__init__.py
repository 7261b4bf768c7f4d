"""The FHIR R4 core: definitions, validation, indexing, search, the versioned store and the REST router."""
