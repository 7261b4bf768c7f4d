"""Who is asking and what they attempt: the two inputs of the policy decision point (``security/pdp``).

The resource server turns an access token into a :class:`Caller`; the FHIR service describes each interaction as
an :class:`Action`; ``pdp.engine.PolicyDecisionPoint.decide`` answers, ``pdp.enforce.PolicyEnforcer`` applies the
answer on every read and write path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Caller:
    """Who is asking: account kind, subject, scopes and any attribute the security layer attaches."""

    kind: str = "anonymous"  # anonymous | patient | assistant | professional | staff | system
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
