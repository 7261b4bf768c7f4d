"""The operations registry: ``$name`` handlers at system, type or instance level.

National services register their operations here (``$ihe-pix``, ``$match``, ``$immds-forecast``...); the router
dispatches ``/fhir/$op``, ``/fhir/Type/$op`` and ``/fhir/Type/id/$op`` to them and the CapabilityStatement lists
them. A handler gets the store session, the request context and the input Parameters (from the POST body or the
GET query), and returns an :class:`~esante.fhir.context.Outcome`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from esante.fhir.context import Outcome, RequestContext
from esante.fhir.store import StoreSession


@dataclass(frozen=True)
class OperationCall:
    """Everything a handler needs about one invocation."""

    session: StoreSession
    ctx: RequestContext
    name: str
    resource_type: str | None
    resource_id: str | None
    parameters: dict[str, Any]  # a Parameters resource (GET query turned into one) or the raw body resource
    method: str
    query: tuple[tuple[str, str], ...] = ()  # the URL's query as sent (GET paging: _count, _offset)


OperationHandler = Callable[[OperationCall], Awaitable[Outcome]]


@dataclass(frozen=True)
class OperationDefinition:
    """One registered operation and where it may be invoked."""

    name: str
    handler: OperationHandler
    system: bool = False
    type_level: bool = False
    instance: bool = False
    resource_types: frozenset[str] | None = None  # None: every type
    affects_state: bool = False  # GET is refused for state-changing operations
    documentation: str = ""
    # the SMART permission letter (c r u d s) the caller needs on the resource type to invoke it; None: any
    # authenticated caller (the operation's own reads and writes still go through the policy)
    requires: str | None = None
    # anyone may invoke it, with no access token (a token, when sent, is still checked): the handler asks the
    # policy what such a caller gets (a rule granting anonymous callers, e.g. the public directory search)
    public: bool = False
    # the operation writes nothing: a POST invocation runs like a read, on a read connection that also serves the
    # bearer gate's live check (no write transaction: two round trips and a pool checkout fewer; e.g. the WSE checks)
    read_only: bool = False


@dataclass
class OperationRegistry:
    """All operations known to the server, by name."""

    _ops: dict[str, list[OperationDefinition]] = field(default_factory=dict)

    def register(self, definition: OperationDefinition) -> None:
        self._ops.setdefault(definition.name, []).append(definition)

    def find(self, name: str, resource_type: str | None, instance: bool) -> OperationDefinition | None:
        for op in self._ops.get(name, []):
            if resource_type is None and op.system:
                return op
            applies = resource_type is not None and (op.resource_types is None or resource_type in op.resource_types)
            if applies and ((instance and op.instance) or (not instance and op.type_level)):
                return op
        return None

    def all(self) -> list[OperationDefinition]:
        return [op for ops in self._ops.values() for op in ops]


def query_to_parameters(query: list[tuple[str, str]]) -> dict[str, Any]:
    """GET invocation: each query parameter becomes a ``valueString`` parameter."""
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": name, "valueString": value} for name, value in query if not name.startswith("_")],
    }
