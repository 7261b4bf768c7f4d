"""Hook points for the national services (MPI matching, DSP rules, ...), as a typed enumeration.

A pointcut is named by layer and phase and declares what its callbacks receive. Callbacks are async; a
``PRESTORAGE`` callback may modify the resource dict in place or raise a :class:`~esante.fhir.errors.FhirError`
to refuse the write; a ``PRECOMMIT`` callback runs inside the same database transaction after the write (so
derived indexes it maintains commit or roll back with the resource).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from esante.fhir.model import StoredResource
    from esante.fhir.store import StoreSession
    from esante.security.policy import Caller


class Pointcut(Enum):
    """Where a hook runs. Arguments arrive in a :class:`HookEvent`."""

    STORAGE_PRESTORAGE_CREATE = "storage.prestorage.create"  # resource (mutable), previous=None
    STORAGE_PRESTORAGE_UPDATE = "storage.prestorage.update"  # resource (mutable), previous
    STORAGE_PRESTORAGE_DELETE = "storage.prestorage.delete"  # previous
    STORAGE_PRECOMMIT_CREATED = "storage.precommit.created"  # resource (as written), stored
    STORAGE_PRECOMMIT_UPDATED = "storage.precommit.updated"  # resource (as written), stored, previous
    STORAGE_PRECOMMIT_DELETED = "storage.precommit.deleted"  # stored (tombstone), previous


@dataclass
class HookEvent:
    """What a hook sees: the transaction, the caller, and the resource before/after."""

    pointcut: Pointcut
    session: StoreSession
    caller: Caller | None
    resource_type: str
    resource: dict[str, Any] | None = None
    previous: StoredResource | None = None
    stored: StoredResource | None = None


HookCallback = Callable[[HookEvent], Awaitable[None]]


@dataclass
class HookRegistry:
    """Callbacks per pointcut, optionally limited to some resource types."""

    _hooks: dict[Pointcut, list[tuple[frozenset[str] | None, HookCallback]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def register(self, pointcut: Pointcut, callback: HookCallback, resource_types: set[str] | None = None) -> None:
        self._hooks[pointcut].append((frozenset(resource_types) if resource_types else None, callback))

    def has(self, pointcut: Pointcut, resource_type: str) -> bool:
        return any(types is None or resource_type in types for types, _ in self._hooks.get(pointcut, ()))

    async def fire(self, event: HookEvent) -> None:
        for types, callback in self._hooks.get(event.pointcut, ()):
            if types is None or event.resource_type in types:
                await callback(event)
