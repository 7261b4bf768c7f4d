"""Plugs the MPI into a platform: its operations (and, as they come, its hooks and access rules)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from esante.mpi.domains import DomainStore
from esante.mpi.feed import IdentityFeed
from esante.mpi.matchers import MatriculeMatcher
from esante.mpi.pix import pix_operation
from esante.mpi.vigilance.operations import vigilance_operations

if TYPE_CHECKING:
    from esante.app import Platform


def install_mpi(platform: Platform) -> None:
    domains = DomainStore(platform.database)
    platform.operations.register(pix_operation(platform.service, domains))
    for operation in vigilance_operations(domains):
        platform.operations.register(operation)
    IdentityFeed(MatriculeMatcher()).install(platform.hooks)
