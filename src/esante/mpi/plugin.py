"""Plugs the MPI into a platform: its operations, its identity-feed hooks and its matching engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from esante.mpi.compare import compare_operations
from esante.mpi.domains import DomainStore
from esante.mpi.engine import MatchingEngine
from esante.mpi.feed import IdentityFeed
from esante.mpi.match import match_operation
from esante.mpi.match_parameters import ParameterStore
from esante.mpi.matchers import EngineMatcher
from esante.mpi.pix import pix_operation
from esante.mpi.vigilance.operations import vigilance_operations

if TYPE_CHECKING:
    from esante.app import Platform


def install_mpi(platform: Platform) -> MatchingEngine:
    """Register the MPI on ``platform``; the engine returned is the platform's one (``platform.mpi_engine``)."""
    domains = DomainStore(platform.database)
    engine = MatchingEngine(platform.database, ParameterStore(platform.database))
    platform.operations.register(pix_operation(platform.service, domains))
    for operation in vigilance_operations(domains):
        platform.operations.register(operation)
    platform.operations.register(match_operation(platform.service, engine))
    for operation in compare_operations(platform.service, engine.parameters):
        platform.operations.register(operation)
    IdentityFeed(EngineMatcher(engine)).install(platform.hooks)
    return engine
