"""The single policy seam: every interaction and every resource leaving the store passes through here.

The REST router and the bundle processor call :meth:`Policy.authorize` once per interaction, then
:meth:`Policy.can_see` for every resource they are about to return (read, vread, search matches, _include and
_revinclude, history, operation outputs) and :meth:`Policy.check_write` before every write. This issue ships the
allow-all policy; the security issue replaces it with the real decision point (accounts, scopes, DSP rules).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from esante.fhir.model import StoredResource


@dataclass(frozen=True)
class Caller:
    """Who is asking: account kind, subject, scopes and any attribute the security layer attaches."""

    kind: str = "anonymous"  # anonymous | patient | professional | assistant | staff | system
    subject: str | None = None
    scopes: tuple[str, ...] = ()
    purpose_of_use: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Action:
    """What is being attempted."""

    interaction: str  # read vread search-type search-system history-* create update patch delete operation ...
    resource_type: str | None = None
    resource_id: str | None = None
    operation: str | None = None


class Policy(Protocol):
    """The decision point. Methods raise a FhirError (401/403/404) to refuse."""

    async def authorize(self, caller: Caller, action: Action) -> None: ...

    async def can_see(self, caller: Caller, action: Action, resource: StoredResource) -> bool: ...

    async def check_write(
        self, caller: Caller, action: Action, resource: dict[str, Any] | None, current: StoredResource | None
    ) -> None: ...


class AllowAllPolicy:
    """Permits everything: the platform core's default until the security seam is filled."""

    async def authorize(self, caller: Caller, action: Action) -> None:
        return None

    async def can_see(self, caller: Caller, action: Action, resource: StoredResource) -> bool:
        return True

    async def check_write(
        self, caller: Caller, action: Action, resource: dict[str, Any] | None, current: StoredResource | None
    ) -> None:
        return None
