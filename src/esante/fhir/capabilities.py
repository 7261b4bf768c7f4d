"""GET /fhir/metadata: the CapabilityStatement, generated from what is really wired (it never lies).

Resource types and their search parameters come from the loaded registry, operations from the operations
registry, interactions from the router's fixed set (every type supports the same ones).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from esante import __version__
from esante.fhir.context import RequestContext
from esante.fhir.search.parse import UNSUPPORTED

if TYPE_CHECKING:
    from esante.fhir.router import FhirRouter

_READ_ONLY = frozenset({"read", "vread", "history-instance", "history-type", "search-type"})
TYPE_INTERACTIONS = (
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
)
SYSTEM_INTERACTIONS = ("transaction", "batch", "search-system", "history-system")
_STARTED = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class CapabilityAdditions:
    """What national services declare on top of the generated statement: the actors' CapabilityStatements the
    server instantiates (IHE mCSD's Care Services Selective Supplier, ...) and the profiles a type supports.

    Services fill it at start-up (``platform.router.capability``); the statement then lists it, so a declaration
    lives next to the code that honours it.
    """

    instantiates: list[str] = field(default_factory=list)
    profiles: dict[str, list[str]] = field(default_factory=dict)

    def instantiate(self, canonical: str) -> None:
        if canonical not in self.instantiates:
            self.instantiates.append(canonical)

    def support_profile(self, resource_type: str, canonical: str) -> None:
        profiles = self.profiles.setdefault(resource_type, [])
        if canonical not in profiles:
            profiles.append(canonical)


def capability_statement(router: FhirRouter, ctx: RequestContext) -> dict[str, Any]:
    registry = router.service.registry
    operations = router.operations.all()
    resources = [
        _resource_entry(router, name, tuple(sorted(op.name for op in operations if _applies(op, name))))
        for name in registry.resource_types
    ]
    additions = router.capability
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": _STARTED,
        "publisher": "eSanté platform",
        "kind": "instance",
        **({"instantiates": list(additions.instantiates)} if additions.instantiates else {}),
        "software": {"name": "esante", "version": __version__},
        "implementation": {"description": "eSanté FHIR R4 server", "url": ctx.base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "resource": resources,
                "interaction": [{"code": code} for code in SYSTEM_INTERACTIONS],
                "searchParam": [
                    {"name": "_type", "type": "token"},
                    {"name": "_id", "type": "token"},
                    {"name": "_lastUpdated", "type": "date"},
                ],
                "operation": [
                    {"name": op.name, "definition": f"{ctx.base_url}/OperationDefinition/{op.name}"}
                    for op in operations
                    if op.system
                ],
                **_security(router),
            }
        ],
    }


def _security(router: FhirRouter) -> dict[str, Any]:
    """SMART App Launch's discovery in the CapabilityStatement: the OAuth endpoints every request needs."""
    if router.authenticator is None:
        return {}
    issuer = router.authenticator.settings.effective_issuer
    uris = {"authorize": "oauth/authorize", "token": "oauth/token", "introspect": "oauth/introspect"}
    uris["revoke"] = "oauth/revoke"
    return {
        "security": {
            "cors": False,
            "service": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                            "code": "SMART-on-FHIR",
                        }
                    ],
                    "text": "OAuth 2.0 bearer tokens (SMART App Launch, IHE IUA)",
                }
            ],
            "extension": [
                {
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [{"url": name, "valueUri": f"{issuer}/{path}"} for name, path in uris.items()],
                }
            ],
            "description": "Every interaction but this CapabilityStatement needs an access token from "
            f"{issuer}/oauth/token (see {issuer}/.well-known/smart-configuration).",
        }
    }


def _applies(op: Any, resource_type: str) -> bool:
    return (op.type_level or op.instance) and (op.resource_types is None or resource_type in op.resource_types)


def _resource_entry(router: FhirRouter, name: str, operations: tuple[str, ...]) -> dict[str, Any]:
    entry = dict(_static_entry(router, name))
    profiles = router.capability.profiles.get(name)
    if profiles:
        entry["supportedProfile"] = list(profiles)
    if operations:
        entry["operation"] = [
            {"name": op, "definition": f"http://hl7.org/fhir/OperationDefinition/Resource-{op}"} for op in operations
        ]
    return entry


@lru_cache(maxsize=256)
def _static_entry_cached(
    name: str,
    params: tuple[tuple[str, str, str], ...],
    includes: tuple[str, ...],
    revincludes: tuple[str, ...],
) -> dict[str, Any]:
    from esante.fhir.service import APPEND_ONLY

    if name in APPEND_ONLY:  # written by the server alone (the audit trail): read and search only
        return {
            "type": name,
            "versioning": "versioned",
            "readHistory": True,
            "interaction": [{"code": code} for code in TYPE_INTERACTIONS if code in _READ_ONLY],
            "searchInclude": list(includes),
            "searchRevInclude": list(revincludes),
            "searchParam": [{"name": code, "definition": url, "type": kind} for code, kind, url in params],
        }
    return {
        "type": name,
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalRead": "not-supported",
        "conditionalUpdate": True,
        "conditionalDelete": "single",
        "interaction": [{"code": code} for code in TYPE_INTERACTIONS],
        "searchInclude": list(includes),
        "searchRevInclude": list(revincludes),
        "searchParam": [{"name": code, "definition": url, "type": kind} for code, kind, url in params],
    }


def _static_entry(router: FhirRouter, name: str) -> dict[str, Any]:
    registry = router.service.registry
    params = registry.params(name)
    # only what the search compiler really answers: no "special" types (Location near) and no _text/_content/_query
    searchable = tuple(
        sorted((p.code, p.type, p.url) for p in params.values() if p.type != "special" and p.code not in UNSUPPORTED)
    )
    includes = tuple(sorted(f"{name}:{p.code}" for p in params.values() if p.type == "reference"))
    revincludes = tuple(
        sorted(
            f"{other}:{p.code}"
            for other in registry.resource_types
            for p in registry.params(other).values()
            if p.type == "reference" and name in p.targets
        )
    )
    return _static_entry_cached(name, searchable, includes, revincludes)
