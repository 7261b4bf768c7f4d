"""Bootstrap: wire settings → database → store → service → router → ASGI app, in one place.

No engine is created at import time; ``create_app`` builds everything and the app's lifespan connects and
disconnects the database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from esante import __version__, logs
from esante.config import Settings, load_settings
from esante.cve.plugin import install_cve
from esante.db.engine import Database, create_database
from esante.dsp.plugin import install_dsp
from esante.fhir.definitions import get_registry
from esante.fhir.hooks import HookRegistry
from esante.fhir.http import FhirEndpoint
from esante.fhir.operations import OperationRegistry
from esante.fhir.router import FhirRouter
from esante.fhir.service import FhirService
from esante.fhir.store import ResourceStore
from esante.fhir.validate_operation import VALIDATE
from esante.hpd.plugin import install_hpd
from esante.mpi.engine import MatchingEngine
from esante.mpi.plugin import install_mpi
from esante.notify.plugin import install_notify
from esante.security.accounts.api import account_routes
from esante.security.accounts.service import AccountService
from esante.security.audit_trail import Auditor
from esante.security.jwks import CACHE_CONTROL, jwks_document
from esante.security.keys import KeyRing
from esante.security.oauth.routes import oauth_routes
from esante.security.pdp.decision import Rule
from esante.security.pdp.enforce import PolicyEnforcer
from esante.security.pdp.engine import PolicyDecisionPoint
from esante.security.pdp.rules import default_rules
from esante.security.ratelimit import RateLimiter
from esante.security.resource_server import ResourceServer
from esante.wse.plugin import install_wse

_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


@dataclass
class Platform:
    """The wired platform: what national services plug into (hooks, operations, policy)."""

    settings: Settings
    database: Database
    store: ResourceStore
    service: FhirService
    router: FhirRouter
    hooks: HookRegistry
    operations: OperationRegistry
    keyring: KeyRing  # the authorization server's signing keys (lazy: files are created on first use)
    policy: PolicyDecisionPoint  # services add their access rules here (policy.add_rule)
    resource_server: ResourceServer  # the bearer-token gate of /fhir (services add token checks here)
    accounts: AccountService  # compte eSanté use cases (activation, login, lockout, ...)
    login_limiter: RateLimiter  # one budget for every password-taking endpoint of this process
    auditor: Auditor | None = None
    mpi_engine: MatchingEngine | None = None  # the MPI's online matching engine (mpi/engine.py)
    # run once the database is connected, before the first request (e.g. the HPD writes its code systems)
    startup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # run when serving ends, before the database closes (e.g. the notification delivery task stops)
    shutdown: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def build_platform(settings: Settings, rules: list[Rule] | None = None) -> Platform:
    """Wire the platform; ``rules`` replaces the default access rules (tests of the policy seam)."""
    registry = get_registry()
    database = create_database(settings.effective_database_url, pool_size=settings.db_pool_size)
    hooks = HookRegistry()
    store = ResourceStore(database, hooks)
    pdp = PolicyDecisionPoint(registry, default_rules(registry, settings.roles_file) if rules is None else rules)
    service = FhirService(registry, PolicyEnforcer(pdp, registry), settings.default_page_size, settings.max_page_size)
    operations = OperationRegistry()
    operations.register(VALIDATE)
    auditor = Auditor(store, registry, background=settings.audit_background_chain) if settings.audit_enabled else None
    keyring = KeyRing.from_settings(settings)
    resource_server = ResourceServer(settings, keyring, database)
    router = FhirRouter(
        store,
        service,
        operations,
        settings.max_bundle_entries,
        auditor,
        resource_server,
        cached_plans_for_one_patient=settings.search_cached_plans_for_one_patient,
    )
    accounts = AccountService(database, settings)
    platform = Platform(
        settings,
        database,
        store,
        service,
        router,
        hooks,
        operations,
        keyring,
        pdp,
        resource_server,
        accounts,
        RateLimiter(),
        auditor,
    )
    platform.mpi_engine = install_mpi(platform)
    install_dsp(platform)
    install_hpd(platform)
    install_notify(platform)
    install_wse(platform)
    install_cve(platform)
    return platform


def warm_up() -> None:
    """Load, before the first request, what requests would otherwise build lazily.

    Without it the first write of each worker waited ~2 s (the R4 definitions, every type's index plan, the
    validation models), which showed as a p99 of 300 ms in a short benchmark. The loaded objects then live for
    the whole process, so they are moved out of the garbage collector's sight (``gc.freeze``).
    """
    import gc

    from esante.fhir.errors import FhirError
    from esante.fhir.indexing import extract_index_rows
    from esante.fhir.validation import validate_resource

    registry = get_registry()
    for resource_type in registry.resource_types:
        extract_index_rows({"resourceType": resource_type})
        with contextlib.suppress(FhirError):  # an empty resource misses required elements: only loading matters
            validate_resource({"resourceType": resource_type})
    gc.collect()
    gc.freeze()


def create_app(settings: Settings | None = None, platform: Platform | None = None) -> Starlette:
    """The ASGI application serving the FHIR API at /fhir."""
    settings = settings or load_settings()
    logs.configure(settings.log_level)
    platform = platform or build_platform(settings)
    endpoint = FhirEndpoint(platform.router, settings)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if settings.warm_up:
            warm_up()
        await platform.database.connect()
        if platform.auditor is not None:
            await platform.auditor.flush()  # events journaled before a restart are chained first
        for task in platform.startup:
            await task()
        warming = None
        if settings.warm_up and platform.mpi_engine is not None:  # the register is indexed while serving starts
            warming = asyncio.create_task(platform.mpi_engine.warm())
        try:
            yield
        finally:
            if warming is not None and not warming.done():
                warming.cancel()
            for task in reversed(platform.shutdown):
                await task()
            if platform.auditor is not None:
                await platform.auditor.close()
            await platform.database.close()

    async def home(request: Request) -> Response:
        body = {"service": "esante", "version": __version__, "fhir": endpoint.base_url(request)}
        return Response(orjson.dumps(body), media_type="application/json")

    async def fhir(request: Request) -> Response:
        return await endpoint(request)

    async def jwks(request: Request) -> Response:
        body = await run_in_threadpool(jwks_document, platform.keyring)  # may read (or first create) key files
        return Response(orjson.dumps(body), media_type="application/json", headers={"Cache-Control": CACHE_CONTROL})

    app = Starlette(
        routes=[
            Route("/", home, methods=["GET"]),
            Route("/.well-known/jwks.json", jwks, methods=["GET"]),
            *account_routes(platform.accounts, platform.login_limiter),
            *oauth_routes(platform),
            Route("/fhir", fhir, methods=_METHODS),
            Route("/fhir/{path:path}", fhir, methods=_METHODS),
        ],
        lifespan=lifespan,
    )
    app.state.platform = platform
    return app
