"""What rules return (grants) and what the decision point answers (decisions). Pure data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from esante.security.pdp.restrictions import EVERYTHING, NOTHING, Restriction
from esante.security.policy import Action, Caller

# SMART v2 permission letter of each interaction (c create, r read, u update, d delete, s search)
LETTERS = {
    "read": "r",
    "vread": "r",
    "history-instance": "r",
    "search-type": "s",
    "search-system": "s",
    "history-type": "s",
    "history-system": "s",
    "create": "c",
    "update": "u",
    "patch": "u",
    "delete": "d",
}
INTERACTION_OF_LETTER = {"r": "read", "s": "search-type", "c": "create", "u": "update", "d": "delete"}


def letter_of(action: Action) -> str:
    """The permission letter an interaction needs (operations name theirs through their definition)."""
    try:
        return LETTERS[action.interaction]
    except KeyError:
        raise ValueError(f"no permission letter for interaction {action.interaction!r}") from None


@dataclass(frozen=True)
class AccessRequest:
    """One question to the rules: may ``caller`` do ``letter`` on resources of ``resource_type``?"""

    caller: Caller
    action: Action
    letter: str  # c r u d s
    resource_type: str


@dataclass(frozen=True)
class Grant:
    """A rule's yes: the interaction is allowed on the resources matching ``restriction``.

    ``count_only``: the caller may only count (``_summary=count``), never see the resources (statisticians).
    ``notable``: an exceptional grant (acting for another person, emergency access, consent) that the audit trail
    records as an authorization-decision event of its own.
    """

    rule: str
    restriction: Restriction = EVERYTHING
    count_only: bool = False
    notable: bool = False


class Rule(Protocol):
    """A source of grants and vetoes; rules never see HTTP or SQL, only the caller and the request."""

    name: str

    def grants(self, request: AccessRequest) -> Iterable[Grant]: ...

    def vetoes(self, request: AccessRequest) -> Iterable[Restriction]: ...


@dataclass(frozen=True)
class Decision:
    """The answer for one (caller, action, type): allowed on ``restriction`` (``NOTHING`` when denied)."""

    action: Action
    resource_type: str
    letter: str
    restriction: Restriction
    rules: tuple[str, ...] = ()  # the rules whose grants were used
    reason: str = ""  # why it was denied, for the caller (no patient data)
    count_only: bool = False
    notable: bool = False
    scope_denied: bool = False  # denied by the token's scopes (RFC 6750 insufficient_scope)
    required_scope: str | None = None  # the SMART scope that would have allowed it
    vetoed_by: tuple[str, ...] = field(default=())

    @property
    def allowed(self) -> bool:
        return self.restriction is not NOTHING

    @property
    def unrestricted(self) -> bool:
        return self.restriction is EVERYTHING and not self.count_only
