"""The provider directory's resource types (IHE mCSD): readable by every authenticated person."""

from __future__ import annotations

DIRECTORY_TYPES = frozenset(
    {
        "Practitioner",
        "PractitionerRole",
        "Organization",
        "Location",
        "HealthcareService",
        "Endpoint",
        "OrganizationAffiliation",
    }
)
READ_LETTERS = frozenset("rs")
