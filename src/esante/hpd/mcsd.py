"""IHE mCSD on the platform: what the server declares and the public directory search it adds.

ITI-90 (Find Matching Care Services) and ITI-91 (Request Care Services Updates) need nothing of their own: they
are the generic FHIR search and history, which support every parameter, modifier and _include/_revinclude mCSD
lists (the hierarchy modifiers ``:above``/``:below`` and mCSD's two Organization-hierarchy SearchParameters
included). This module declares them in the CapabilityStatement and installs the public directory operation
(``PractitionerRole/$hpd-directory``, see :mod:`esante.hpd.public_directory`). See docs/hpd-mcsd.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from esante.security.pdp.rules.directory import DIRECTORY_TYPES

if TYPE_CHECKING:
    from esante.app import Platform

MCSD = "https://profiles.ihe.net/ITI/mCSD"
SELECTIVE_SUPPLIER = f"{MCSD}/CapabilityStatement/IHE.mCSD.CareServicesSelectiveSupplier"
UPDATE_SUPPLIER = f"{MCSD}/CapabilityStatement/IHE.mCSD.CareServicesUpdateSupplier"


def profile(resource_type: str) -> str:
    """The mCSD base profile of a directory type (``IHE.mCSD.Organization``, ...)."""
    return f"{MCSD}/StructureDefinition/IHE.mCSD.{resource_type}"


def install_mcsd(platform: Platform) -> None:
    """Declare the mCSD actors the server plays and their profiles; register the public directory search."""
    from esante.hpd.public_directory import install_public_directory

    capability = platform.router.capability
    capability.instantiate(SELECTIVE_SUPPLIER)
    capability.instantiate(UPDATE_SUPPLIER)
    for resource_type in sorted(DIRECTORY_TYPES):
        capability.support_profile(resource_type, profile(resource_type))
    install_public_directory(platform)
