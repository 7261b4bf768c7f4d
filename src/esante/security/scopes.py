"""SMART App Launch scopes (v2, with the v1 forms still accepted): parsing and matching. Pure: no I/O.

A scope string is a space-separated list. Resource scopes are ``<context>/<type>.<permissions>[?<query>]``:

- context: ``patient`` (data of the patient in context), ``user`` (what the user may see), ``system`` (a backend
  client acting on its own);
- type: a FHIR resource type or ``*``;
- permissions: v2 letters ``c`` create, ``r`` read, ``u`` update, ``d`` delete, ``s`` search, each at most once and
  in that order (``rs``, ``cruds``); or the v1 words ``read`` (= ``rs``), ``write`` (= ``cud``) and ``*``
  (= ``cruds``);
- an optional v2 query (``patient/Observation.rs?category=laboratory``) restricting the scope to matching resources.

Other recognised scopes: ``openid``, ``fhirUser``, ``profile``, ``offline_access``, ``online_access``, ``launch`` and
``launch/<context>`` (``launch/patient``, ``launch/encounter``). Any other scope without a ``/`` is kept as is in
``ScopeSet.other`` (an authorization server may define its own); a scope that looks like a resource or launch scope
but is malformed raises :class:`ScopeError`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

CONTEXTS = ("patient", "user", "system")
INTERACTIONS = "cruds"
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_SIMPLE = {"openid", "fhirUser", "profile", "offline_access", "online_access", "launch"}
_TYPE = re.compile(r"^(\*|[A-Z][A-Za-z]{0,63})$")
_LAUNCH_CONTEXT = re.compile(r"^[a-z][A-Za-z0-9_-]{0,63}$")
# RFC 6749 scope-token: %x21 / %x23-5B / %x5D-7E (printable ASCII except space, " and \)
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")

Filter = tuple[tuple[str, str], ...]


class ScopeError(ValueError):
    """A scope that cannot be parsed; the message says which and why."""

    def __init__(self, scope: str, reason: str) -> None:
        super().__init__(f"invalid scope {scope!r}: {reason}")
        self.scope = scope
        self.reason = reason


@dataclass(frozen=True)
class ResourceScope:
    """One ``context/type.permissions[?query]`` scope."""

    context: str
    resource_type: str  # a FHIR type or "*"
    interactions: frozenset[str]
    query: Filter = ()
    raw: str = ""

    def covers(self, interaction: str, resource_type: str, context: str) -> bool:
        """Whether this scope grants ``interaction`` on ``resource_type`` in ``context`` (ignoring its query)."""
        return (
            context == self.context and interaction in self.interactions and self.resource_type in ("*", resource_type)
        )


@dataclass(frozen=True)
class ScopeSet:
    """A parsed scope string."""

    resources: tuple[ResourceScope, ...] = ()
    openid: bool = False
    fhir_user: bool = False
    profile: bool = False
    offline_access: bool = False
    online_access: bool = False
    launch: bool = False
    launch_contexts: frozenset[str] = frozenset()  # from launch/patient, launch/encounter, ...
    other: tuple[str, ...] = ()
    raw: tuple[str, ...] = field(default=())

    def allows(self, interaction: str, resource_type: str, context: str) -> bool:
        """True when an unrestricted scope grants ``interaction`` (one of c r u d s) on the type in the context.

        Scopes carrying a query are not counted: see :meth:`filters`.
        """
        _check_request(interaction, resource_type, context)
        return any(s.covers(interaction, resource_type, context) for s in self.resources if not s.query)

    def filters(self, interaction: str, resource_type: str, context: str) -> tuple[Filter, ...]:
        """The queries of the restricted scopes granting the interaction: a resource matching any one is allowed."""
        _check_request(interaction, resource_type, context)
        return tuple(s.query for s in self.resources if s.query and s.covers(interaction, resource_type, context))

    def contexts(self) -> frozenset[str]:
        """The contexts (patient, user, system) any resource scope is granted in."""
        return frozenset(s.context for s in self.resources)

    def __str__(self) -> str:
        return " ".join(self.raw)


def _check_request(interaction: str, resource_type: str, context: str) -> None:
    if len(interaction) != 1 or interaction not in INTERACTIONS:
        raise ValueError(f"interaction must be one of c, r, u, d, s, not {interaction!r}")
    if context not in CONTEXTS:
        raise ValueError(f"context must be one of {', '.join(CONTEXTS)}, not {context!r}")
    if not resource_type or resource_type == "*":
        raise ValueError("ask about a concrete resource type")


def _permissions(scope: str, text: str) -> frozenset[str]:
    if text in _V1:
        return frozenset(_V1[text])
    if not text:
        raise ScopeError(scope, "no permissions after the '.' (expected e.g. .rs, .cruds or .read)")
    if any(ch not in INTERACTIONS for ch in text):
        raise ScopeError(scope, f"permissions {text!r} are neither v2 letters (c r u d s) nor read, write or *")
    ordered = "".join(ch for ch in INTERACTIONS if ch in text)
    if ordered != text:
        raise ScopeError(scope, f"permissions {text!r} must appear once each in the order c r u d s ({ordered!r})")
    return frozenset(text)


def parse_scope(scope: str, resource_types: Collection[str] | None = None) -> ResourceScope | str:
    """One scope: a :class:`ResourceScope`, or the scope itself for non-resource scopes. Raises ScopeError."""
    if not scope or not _SCOPE_TOKEN.match(scope):
        raise ScopeError(scope, "empty or holding characters outside the OAuth scope syntax")
    if "/" not in scope:
        return scope
    head, _, rest = scope.partition("/")
    if head == "launch":
        if not _LAUNCH_CONTEXT.match(rest):
            raise ScopeError(scope, "expected launch/<context> such as launch/patient")
        return scope
    if head not in CONTEXTS:
        raise ScopeError(scope, f"unknown context {head!r} (expected patient/, user/, system/ or launch/)")
    body, has_query, query_text = rest.partition("?")
    resource_type, dot, permissions = body.partition(".")
    if not dot:
        raise ScopeError(scope, "missing '.<permissions>' (e.g. patient/Observation.rs)")
    if not _TYPE.match(resource_type):
        raise ScopeError(scope, f"{resource_type!r} is not a resource type nor *")
    if resource_types is not None and resource_type != "*" and resource_type not in resource_types:
        raise ScopeError(scope, f"unknown resource type {resource_type!r}")
    interactions = _permissions(scope, permissions)
    query: Filter = ()
    if has_query:
        if permissions in _V1:
            raise ScopeError(scope, "a query is only allowed on v2 scopes (letters c r u d s)")
        try:
            pairs = parse_qsl(query_text, keep_blank_values=False, strict_parsing=True)
        except ValueError as error:
            raise ScopeError(scope, f"malformed query {query_text!r}") from error
        if not pairs or any(not name for name, _ in pairs):
            raise ScopeError(scope, f"malformed query {query_text!r}")
        query = tuple(pairs)
    return ResourceScope(head, resource_type, interactions, query, scope)


def parse_scopes(scopes: str | Iterable[str], resource_types: Collection[str] | None = None) -> ScopeSet:
    """Parse a space-separated scope string (or a list of scopes). Duplicates are kept once; order is kept."""
    items = scopes.split() if isinstance(scopes, str) else [s for item in scopes for s in item.split()]
    unique = tuple(dict.fromkeys(items))
    resources: list[ResourceScope] = []
    simple: set[str] = set()
    launch_contexts: set[str] = set()
    other: list[str] = []
    for item in unique:
        parsed = parse_scope(item, resource_types)
        if isinstance(parsed, ResourceScope):
            resources.append(parsed)
        elif parsed.startswith("launch/"):
            launch_contexts.add(parsed.partition("/")[2])
        elif parsed in _SIMPLE:
            simple.add(parsed)
        else:
            other.append(parsed)
    return ScopeSet(
        resources=tuple(resources),
        openid="openid" in simple,
        fhir_user="fhirUser" in simple,
        profile="profile" in simple,
        offline_access="offline_access" in simple,
        online_access="online_access" in simple,
        launch="launch" in simple,
        launch_contexts=frozenset(launch_contexts),
        other=tuple(other),
        raw=unique,
    )
