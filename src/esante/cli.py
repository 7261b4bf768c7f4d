"""The ``esante`` command line: one configuration (see config.py) shared with the running server."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console

from esante.blobs.cli import blobs_app
from esante.config import Settings, load_settings
from esante.cve.cli import cve_app
from esante.dsp.cli import dsp_app
from esante.hpd.cli import hpd_app
from esante.mpi.cli import mpi_app
from esante.mpi.matching_cli import parameters_app as _registers_matching_commands  # noqa: F401
from esante.mpi.mllp.cli import mllp
from esante.notify.cli import notify_app
from esante.wse.cli import wse_app

if TYPE_CHECKING:
    from esante.security.accounts.letters import ActivationLetter
    from esante.security.accounts.service import AccountService
    from esante.security.keys import KeyRing
    from esante.security.oauth.client_store import ClientStore
    from esante.security.tokens import Principal

T = TypeVar("T")

app = typer.Typer(help="eSanté national eHealth platform.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema management (Alembic).", no_args_is_help=True)
app.add_typer(db_app, name="db")
keys_app = typer.Typer(help="The authorization server's signing keys (under <var_dir>/keys).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
audit_app = typer.Typer(help="The audit trail (IHE BALP AuditEvents, hash-chained).", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
clients_app = typer.Typer(help="Registered OAuth clients (establishment software, SMART apps).", no_args_is_help=True)
app.add_typer(clients_app, name="clients")
accounts_app = typer.Typer(help="eSanté accounts: creation, letters, suspension, delegations.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.add_typer(mpi_app, name="mpi")
app.add_typer(hpd_app, name="hpd")
app.add_typer(dsp_app, name="dsp")
app.add_typer(notify_app, name="notify")
app.add_typer(cve_app, name="cve")
app.add_typer(blobs_app, name="blobs")
app.add_typer(wse_app, name="wse")
app.command("mllp")(mllp)
synth_app = typer.Typer(help="Synthetic test data: a population for the MPI's benchmarks.", no_args_is_help=True)
app.add_typer(synth_app, name="synth")
console = Console()

ConfigOption = Annotated[Path | None, typer.Option("--config", help="TOML configuration file.")]
_SECRET_SETTINGS = frozenset({"blob_keys", "notify_smtp_password"})  # settings whose value `esante config` never prints
DbOption = Annotated[str | None, typer.Option("--db", help="Database URL (sqlite:///… or postgresql://…).")]


def _settings(config: Path | None, db: str | None = None, **overrides: object) -> Settings:
    return load_settings(config, database_url=db, **overrides)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port.")] = None,
    db: DbOption = None,
    config: ConfigOption = None,
    workers: Annotated[int, typer.Option(help="Worker processes (PostgreSQL only).")] = 1,
    demo: Annotated[bool, typer.Option("--demo", help="Load the demo data set if the store is empty.")] = False,
) -> None:
    """Start the FHIR server (creating or upgrading the database first)."""
    import uvicorn

    from esante.db.migrate import upgrade

    settings = _settings(config, db, host=host, port=port)
    upgrade(settings.effective_database_url)
    settings.effective_blob_dir.mkdir(parents=True, exist_ok=True)
    _keyring(settings)  # the first signing key exists before workers start (and a bad key setting fails here)
    if demo:
        from esante.demo import load_demo

        created = asyncio.run(load_demo(settings))
        console.print(f"demo data: {created} resources loaded" if created else "demo data: store not empty, kept")
        console.print(
            "every /fhir request needs an access token; for the demo, as an integrator with all rights:\n"
            "  TOKEN=$(.venv/bin/esante token --as system:demo-integrator)\n"
            '  curl -H "Authorization: Bearer $TOKEN" '
            f"http://{settings.host}:{settings.port}/fhir/Patient?_count=5"
        )
    base = f"http://{settings.host}:{settings.port}/fhir"
    console.print(f"[bold green]eSanté FHIR server[/] at [bold]{base}[/] (database: {_safe(settings)})")
    if workers > 1 and not settings.effective_database_url.startswith("postgres"):
        console.print("[yellow]SQLite is single-writer: running one worker[/]")
        workers = 1
    # uvicorn's workers build the app from the environment: hand them exactly these settings
    os.environ["ESANTE_DATABASE_URL"] = settings.effective_database_url
    os.environ["ESANTE_VAR_DIR"] = str(settings.var_dir)
    os.environ["ESANTE_HOST"] = settings.host
    os.environ["ESANTE_PORT"] = str(settings.port)
    if config is not None:
        os.environ["ESANTE_CONFIG"] = str(config)
    chain = None
    if (
        settings.audit_enabled
        and settings.audit_chain_process
        and settings.effective_database_url.startswith("postgres")
    ):
        from esante.security.audit_chain_process import ChainProcess

        chain = ChainProcess(settings)
        chain.start()
        os.environ["ESANTE_AUDIT_BACKGROUND_CHAIN"] = "false"  # the workers journal; the chain process chains
    try:
        uvicorn.run(
            "esante.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
            log_level=settings.log_level,
            access_log=False,
            loop="uvloop",
            http="httptools",
        )
    finally:
        if chain is not None:
            chain.stop()


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None, config: ConfigOption = None, revision: str = typer.Argument("head")) -> None:
    """Create or migrate the database schema to the latest revision."""
    from esante.db.migrate import current, upgrade

    settings = _settings(config, db)
    upgrade(settings.effective_database_url, revision)
    console.print(f"database {_safe(settings)} at revision {current(settings.effective_database_url)}")


@db_app.command("current")
def db_current(db: DbOption = None, config: ConfigOption = None) -> None:
    """Show the schema revision of the configured database."""
    from esante.db.migrate import current

    settings = _settings(config, db)
    console.print(current(settings.effective_database_url) or "empty (run: esante db upgrade)")


@audit_app.command("verify")
def audit_verify(db: DbOption = None, config: ConfigOption = None) -> None:
    """Walk the audit hash chain; exit 1 and name the first broken record if it was tampered with."""
    from esante.db.engine import create_database
    from esante.db.migrate import upgrade
    from esante.fhir.definitions import get_registry
    from esante.fhir.store import ResourceStore
    from esante.security.audit_trail import Auditor, AuditTrail, VerifyResult

    settings = _settings(config, db)
    upgrade(settings.effective_database_url)

    async def run() -> VerifyResult:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        database = create_database(settings.effective_database_url, pool_size=2)
        await database.connect()
        try:
            trail = AuditTrail()
            # events journaled but not chained yet (a server stopped abruptly) are chained first
            auditor = Auditor(ResourceStore(database), get_registry(), trail)
            chained = await auditor.flush()
            if chained:
                console.print(f"{chained} journaled events chained before verifying")
            total = await trail.count(database)
            with Progress(
                TextColumn("verifying the audit chain"),
                BarColumn(),
                MofNCompleteColumn(),
                console=console,
                transient=True,
                disable=total < 10_000,
            ) as progress:
                task = progress.add_task("verify", total=total)
                return await trail.verify(database, lambda done: progress.update(task, completed=done))
        finally:
            await database.close()

    result = asyncio.run(run())
    if result.ok:
        console.print(f"[green]audit chain intact[/]: {result.checked} records verified")
        return
    where = f"at seq {result.first_broken_seq}" if result.first_broken_seq is not None else "outside the chain"
    console.print(f"[red]audit chain broken {where}[/]: {result.reason} ({result.checked} records verified)")
    raise typer.Exit(1)


@app.command("config")
def show_config(db: DbOption = None, config: ConfigOption = None) -> None:
    """Print the effective configuration (secrets masked)."""
    settings = _settings(config, db)
    for key, value in sorted(vars(settings).items()):
        shown = _safe(settings) if key == "database_url" else "***" if key in _SECRET_SETTINGS and value else value
        console.print(f"{key} = {shown}")
    console.print(f"effective database = {_safe(settings)}")
    console.print(f"effective blob dir = {settings.effective_blob_dir}")


def _keyring(settings: Settings) -> KeyRing:
    from esante.security.keys import KeyConfigError, KeyRing

    try:
        return KeyRing.load_or_create(settings)
    except KeyConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error


@keys_app.command("list")
def keys_list(config: ConfigOption = None) -> None:
    """List the signing keys: kid, algorithm, state, creation and (retired keys) expiry of publication."""
    from datetime import UTC, datetime

    settings = _settings(config)
    ring = _keyring(settings)
    signing = ring.signing_key().kid

    def when(epoch: int | None) -> str:
        return "-" if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    typer.echo("kid\talg\tstate\tcreated\tpublished_until")
    for key in ring.all_keys():
        state = "signing" if key.kid == signing else key.state if ring.is_published(key) else "expired"
        typer.echo(f"{key.kid}\t{key.alg}\t{state}\t{when(key.created_at)}\t{when(key.expires_at(ring.grace_period))}")
    typer.echo(f"# folder: {settings.key_dir}", err=True)


@keys_app.command("rotate")
def keys_rotate(
    config: ConfigOption = None,
    alg: Annotated[str | None, typer.Option("--alg", help="ES256 or RS256 (default: signing_alg).")] = None,
) -> None:
    """Create a new signing key; the previous ones are retired and stay published for key_grace_period seconds."""
    from esante.security.keys import ALGORITHMS

    settings = _settings(config)
    if alg is not None and alg not in ALGORITHMS:
        typer.echo(f"error: --alg must be one of {', '.join(ALGORITHMS)}", err=True)
        raise typer.Exit(2)
    ring = _keyring(settings)
    key = ring.rotate(alg)
    typer.echo(key.kid)
    typer.echo(f"new signing key {key.kid} ({key.alg}); previous keys retired for {ring.grace_period} s", err=True)


@app.command("token")
def token(
    as_: Annotated[
        str,
        typer.Option(
            "--as",
            help="patient:<Patient id> | professional:<eHealthID> | system:<client id> | staff:<user>",
        ),
    ],
    scope: Annotated[str | None, typer.Option("--scope", help="Space-separated scopes (default per role).")] = None,
    ttl: Annotated[int | None, typer.Option("--ttl", help="Lifetime in seconds (default token_ttl).")] = None,
    aud: Annotated[str | None, typer.Option("--aud", help="Audience (default: the FHIR base URL).")] = None,
    purpose: Annotated[
        str | None, typer.Option("--purpose", help="IUA purpose_of_use code (v3 ActReason, default per role).")
    ] = None,
    role: Annotated[
        list[str] | None,
        typer.Option(
            "--role", help="Staff role(s): administrator, hpd-administrator, identity-vigilance, statistician."
        ),
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Mint a signed access token with the server's key and print it (for tests and scripted integrations).

    The token carries what the platform knows of the principal: a system client's registered scopes, an existing
    account's binding (so suspending the account stops the token), a staff account's roles.
    """
    from esante.db.engine import create_database
    from esante.db.migrate import upgrade
    from esante.hpd.practise import standing_checks
    from esante.security.operator_tokens import OperatorTokenError, TokenPlan, plan_token
    from esante.security.scopes import ScopeError
    from esante.security.tokens import mint_for, principal

    settings = _settings(config, db)

    async def plan(who: Principal) -> TokenPlan:
        database = create_database(settings.effective_database_url, pool_size=1)
        await database.connect()
        try:
            async with database.read() as conn:
                # a professional without the right to practise gets no token (the HPD's standing checks)
                return await plan_token(conn, who, scope, list(role or []), standing=standing_checks())
        finally:
            await database.close()

    try:
        who = principal(as_)
        upgrade(settings.effective_database_url)
        planned = asyncio.run(plan(who))
        ring = _keyring(settings)
        value = mint_for(
            settings,
            ring,
            who,
            scope=planned.scope,
            ttl=ttl,
            audience=aud,
            purpose_of_use=purpose,
            extra_claims=planned.extra_claims,
        )
    except (ValueError, ScopeError, OperatorTokenError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(value)


def _clients(settings: Settings, action: Callable[[ClientStore], Awaitable[T]]) -> T:
    """Run ``action`` on the client registry of the configured database (migrated first, so a fresh var/ works);
    a refusal exits with code 2."""
    from esante.db.engine import create_database
    from esante.db.migrate import upgrade
    from esante.security.oauth.client_store import ClientStore
    from esante.security.oauth.clients import ClientError

    upgrade(settings.effective_database_url)

    async def run() -> T:
        database = create_database(settings.effective_database_url, pool_size=2)
        await database.connect()
        try:
            return await action(ClientStore(database))
        finally:
            await database.close()

    try:
        return asyncio.run(run())
    except ClientError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error


@clients_app.command("register")
def clients_register(
    client_id: Annotated[str, typer.Option("--id", help="The client_id (A-Z a-z 0-9 . _ -).")],
    name: Annotated[str, typer.Option("--name", help="Display name (shown on the consent page).")],
    kind: Annotated[
        str, typer.Option("--kind", help="hospital | laboratory | pharmacy | gp-software | cve | cgdis | app")
    ],
    jwks: Annotated[Path | None, typer.Option("--jwks", help="JWKS file of the client's public keys.")] = None,
    public_key: Annotated[Path | None, typer.Option("--public-key", help="PEM public key file.")] = None,
    redirect_uri: Annotated[
        list[str] | None, typer.Option("--redirect-uri", help="Redirect URI (repeatable; authorization_code).")
    ] = None,
    public: Annotated[bool, typer.Option("--public", help="Public client (no keys, PKCE only).")] = False,
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help='The most it may be granted, e.g. "system/*.rs".')
    ] = None,
    grant: Annotated[
        list[str] | None,
        typer.Option("--grant", help="client_credentials | authorization_code | refresh_token (repeatable)."),
    ] = None,
    organization: Annotated[str | None, typer.Option("--organization", help="The establishment.")] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Register an OAuth client: its keys (JWKS or PEM public key), redirect URIs, grants and scopes."""
    import time

    from esante.security.oauth.clients import ClientError, Registration, build_client, jwks_from_pem, parse_jwks

    settings = _settings(config, db)
    try:
        if jwks is not None and public_key is not None:
            raise ClientError("give --jwks or --public-key, not both")
        keys = None
        if jwks is not None:
            keys = parse_jwks(_read_file(jwks).decode("utf-8", "replace"))
        elif public_key is not None:
            keys = jwks_from_pem(_read_file(public_key))
        registration = Registration(
            client_id=client_id,
            name=name,
            kind=kind,
            jwks=keys,
            redirect_uris=tuple(redirect_uri or ()),
            public=public,
            scopes=" ".join(scope or ()),
            grant_types=tuple(grant or ()),
            organization=organization,
        )
        client = build_client(registration, int(time.time()))
    except ClientError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    _clients(settings, lambda store: store.register(client))
    typer.echo(client.client_id)
    kids = ", ".join(client.key_ids()) or "none"
    typer.echo(
        f"registered {client.kind} client {client.client_id} ({client.auth_method}; grants "
        f"{' '.join(client.grant_types)}; keys {kids})",
        err=True,
    )


def _read_file(path: Path) -> bytes:
    from esante.security.oauth.clients import ClientError

    try:
        data = path.read_bytes()
    except OSError as error:
        raise ClientError(f"cannot read {path}: {error.strerror}") from error
    if len(data) > 1_000_000:
        raise ClientError(f"{path} is larger than 1 MB")
    return data


@clients_app.command("list")
def clients_list(db: DbOption = None, config: ConfigOption = None) -> None:
    """List the clients: id, kind, status, authentication, grants, scopes, organization."""
    settings = _settings(config, db)
    clients = _clients(settings, lambda store: store.list())
    typer.echo("client_id\tkind\tstatus\tauth_method\tgrants\tscopes\torganization")
    for c in clients:
        grants = ",".join(c.grant_types)
        typer.echo(
            f"{c.client_id}\t{c.kind}\t{c.status}\t{c.auth_method}\t{grants}\t{c.scopes}\t{c.organization or '-'}"
        )


@clients_app.command("suspend")
def clients_suspend(
    client_id: Annotated[str, typer.Argument(help="The client to suspend.")],
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Suspend a client: its requests are refused, its tokens become inactive, its refresh tokens are revoked."""
    import time

    settings = _settings(config, db)
    client = _clients(settings, lambda store: store.suspend(client_id, int(time.time())))
    typer.echo(f"client {client.client_id} suspended; its tokens are no longer accepted")


@clients_app.command("reactivate")
def clients_reactivate(
    client_id: Annotated[str, typer.Argument(help="The client to reactivate.")],
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Reactivate a suspended client (tokens issued before the suspension stay refused)."""
    import time

    settings = _settings(config, db)
    client = _clients(settings, lambda store: store.reactivate(client_id, int(time.time())))
    typer.echo(f"client {client.client_id} active")


def _accounts(settings: Settings, action: Callable[[AccountService], Awaitable[T]]) -> T:
    """Run ``action`` on the account service of the configured database (migrated first, so a fresh var/ works);
    a refused operation exits with code 2 and its one-line reason on stderr."""
    from esante.db.engine import create_database
    from esante.db.migrate import upgrade
    from esante.security.accounts.model import AccountError
    from esante.security.accounts.service import AccountService

    upgrade(settings.effective_database_url)
    _log_to_stderr()

    async def run() -> T:
        database = create_database(settings.effective_database_url, pool_size=2)
        await database.connect()
        try:
            return await action(AccountService(database, settings))
        finally:
            await database.close()

    try:
        return asyncio.run(run())
    except AccountError as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(2) from error


def _log_to_stderr() -> None:
    """Keep stdout for the command's output (ids, letters): structlog's default configuration prints to stdout."""
    import structlog

    from esante.logs import configure

    if not structlog.is_configured():
        configure()


LetterFormat = Annotated[str, typer.Option("--format", help="text | html (printable).")]
LetterOut = Annotated[Path | None, typer.Option("--out", help="Write the letter to this file (mode 0600).")]


def _emit_letter(letter: ActivationLetter, fmt: str, out: Path | None) -> None:
    """Print the letter, or write it to ``out`` readable by its owner only (it holds a one-time code)."""
    from esante.security.accounts.letters import render_html, render_text

    content = render_html(letter) if fmt == "html" else render_text(letter)
    if out is None:
        typer.echo(content, nl=False)
        return
    try:
        descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(content)
    except OSError as error:
        typer.echo(f"error: cannot write {out}: {error.strerror}", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"letter written to {out}", err=True)


def _check_format(fmt: str) -> str:
    if fmt not in ("text", "html"):
        typer.echo("error: --format must be text or html", err=True)
        raise typer.Exit(2)
    return fmt


@accounts_app.command("create")
def accounts_create(
    kind: Annotated[str, typer.Option("--kind", help="patient | professional | staff")],
    username: Annotated[str, typer.Option("--username", help="Login name (3-128: letters, digits, . _ @ -).")],
    patient: Annotated[str | None, typer.Option("--patient", help="Patient resource id (patient).")] = None,
    practitioner: Annotated[
        str | None, typer.Option("--practitioner", help="Practitioner resource id (professional).")
    ] = None,
    ehealth_id: Annotated[str | None, typer.Option("--ehealth-id", help="eHealthID (professional).")] = None,
    role: Annotated[
        list[str] | None,
        typer.Option("--role", help="administrator | identity-vigilance | statistician (staff; repeatable)."),
    ] = None,
    matricule: Annotated[str | None, typer.Option("--matricule", help="National identification number.")] = None,
    email: Annotated[str | None, typer.Option("--email", help="E-mail address (checked at activation).")] = None,
    mobile: Annotated[str | None, typer.Option("--mobile", help="Mobile number (checked at activation).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Name printed on the letter.")] = None,
    letter_format: Annotated[str, typer.Option("--letter-format", help="text | html (printable).")] = "text",
    out: LetterOut = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Create an inactive account; prints its id, then the activation letter with its one-time code."""
    fmt = _check_format(letter_format)
    settings = _settings(config, db)
    account, letter = _accounts(
        settings,
        lambda service: service.create(
            kind,
            username,
            patient_id=patient,
            practitioner_id=practitioner,
            ehealth_id=ehealth_id,
            roles=tuple(role or ()),
            matricule=matricule,
            email=email,
            mobile=mobile,
            display_name=name,
        ),
    )
    typer.echo(account.id)
    _emit_letter(letter, fmt, out)


@accounts_app.command("list")
def accounts_list(
    kind: Annotated[str | None, typer.Option("--kind", help="patient | professional | staff")] = None,
    status: Annotated[str | None, typer.Option("--status", help="inactive | active | suspended | closed")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many rows.")] = 100,
    offset: Annotated[int, typer.Option("--offset", help="Skip this many rows.")] = 0,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """List accounts (no secrets): id, kind, username, status, name, link, second factor, lock."""
    from rich.table import Table

    from esante.security.accounts.model import AccountKind, AccountStatus

    try:
        kind_filter = AccountKind(kind) if kind else None
        status_filter = AccountStatus(status) if status else None
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    settings = _settings(config, db)
    rows = _accounts(settings, lambda service: service.list(kind_filter, status_filter, limit, offset))
    table = Table("id", "kind", "username", "status", "name", "link", "totp", "locked until", box=None)
    table.columns[0].no_wrap = True
    for a in rows:
        link = a.fhir_user or " ".join(r.value for r in a.roles)
        if a.ehealth_id:
            link += f" ({a.ehealth_id})"
        locked = str(a.locked_until) if a.locked_until else "-"
        table.add_row(
            a.id,
            a.kind.value,
            a.username,
            a.status.value,
            a.display_name or "-",
            link,
            "yes" if a.totp_enabled else "no",
            locked,
        )
    # piped into grep or a file, the table is not cut to 80 columns
    (console if console.is_terminal else Console(width=250)).print(table)
    typer.echo(f"{len(rows)} account(s)", err=True)


def _status_command(action: str, help_text: str) -> None:
    def command(
        account_id: Annotated[str, typer.Argument(help="The account id.")],
        db: DbOption = None,
        config: ConfigOption = None,
    ) -> None:
        settings = _settings(config, db)
        account = _accounts(settings, lambda service: getattr(service, action)(account_id))
        typer.echo(f"account {account.id} ({account.username}): {account.status.value}")

    command.__doc__ = help_text
    accounts_app.command(action)(command)


_status_command("suspend", "Suspend an account: logins are refused and its tokens stop working at once.")
_status_command("reactivate", "Lift a suspension (tokens issued before it stay refused).")
_status_command("close", "Close an account for good: access stops, its secrets are erased.")
_status_command("unlock", "Lift a lockout after repeated failed logins.")


@accounts_app.command("activation-letter")
def accounts_activation_letter(
    account_id: Annotated[str, typer.Argument(help="The inactive account.")],
    fmt: LetterFormat = "text",
    out: LetterOut = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """A new activation letter (new code; the previous one stops working)."""
    _check_format(fmt)
    settings = _settings(config, db)
    _emit_letter(_accounts(settings, lambda service: service.activation_letter(account_id)), fmt, out)


@accounts_app.command("reset-code")
def accounts_reset_code(
    account_id: Annotated[str, typer.Argument(help="The active account.")],
    fmt: LetterFormat = "text",
    out: LetterOut = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """A password-reset letter with a one-time code (valid reset_code_ttl seconds)."""
    _check_format(fmt)
    settings = _settings(config, db)
    _emit_letter(_accounts(settings, lambda service: service.issue_reset_code(account_id)), fmt, out)


@accounts_app.command("delegate")
def accounts_delegate(
    assistant_id: Annotated[str, typer.Argument(help="The assistant's (patient) account id.")],
    patient_id: Annotated[str, typer.Argument(help="The Patient id the assistant may act for.")],
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Make a patient account the DSP assistant of another patient."""
    settings = _settings(config, db)
    _accounts(settings, lambda service: service.add_delegation(assistant_id, patient_id))
    typer.echo(f"account {assistant_id} now assists Patient/{patient_id}")


@accounts_app.command("undelegate")
def accounts_undelegate(
    assistant_id: Annotated[str, typer.Argument(help="The assistant's account id.")],
    patient_id: Annotated[str, typer.Argument(help="The Patient id.")],
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Revoke an assistant's delegation (the record is kept)."""
    settings = _settings(config, db)
    _accounts(settings, lambda service: service.revoke_delegation(assistant_id, patient_id))
    typer.echo(f"account {assistant_id} no longer assists Patient/{patient_id}")


@synth_app.command("population")
def synth_population(
    count: Annotated[int, typer.Option("--count", min=1, help="Certified identities to generate.")],
    out: Annotated[Path, typer.Option("--out", help="NDJSON file of certified FHIR Patients.")],
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same files.")] = 1,
    feeds: Annotated[int, typer.Option("--feeds", min=0, help="Establishment local identities to draw.")] = 0,
    feeds_out: Annotated[Path | None, typer.Option("--feeds-out", help="NDJSON file of the feed Patients.")] = None,
    truth_out: Annotated[Path | None, typer.Option("--truth-out", help="CSV ground truth of the feeds.")] = None,
) -> None:
    """Generate a synthetic certified population (and establishment feeds with errors) as NDJSON."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from esante.synth import FeedConfig, PopulationConfig, write_population

    if feeds and (feeds_out is None or truth_out is None):
        raise typer.BadParameter("--feeds needs --feeds-out and --truth-out", param_hint="--feeds")
    population = PopulationConfig(count=count, seed=seed)
    feed_config = FeedConfig(records=feeds, seed=seed) if feeds else None
    if feed_config and feeds > count * feed_config.max_domains_per_person:
        raise typer.BadParameter(
            f"at most {count * feed_config.max_domains_per_person} records for {count} identities "
            f"({feed_config.max_domains_per_person} establishments per person)",
            param_hint="--feeds",
        )
    with Progress(
        TextColumn("generating identities"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=count < 10_000,
    ) as progress:
        task = progress.add_task("generate", total=count)
        summary = write_population(
            population,
            out,
            feeds=feed_config,
            feeds_out=feeds_out if feed_config else None,
            truth_out=truth_out if feed_config else None,
            progress=lambda done: progress.update(task, completed=done),
        )
    console.print(
        f"{summary.identities} certified identities -> {out} "
        f"({summary.seconds:.1f} s, {summary.rate:,.0f} identities/s)"
    )
    if feed_config:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(summary.stats.records.items()))
        console.print(f"{summary.feed_records} feed records ({kinds}) -> {feeds_out}; truth -> {truth_out}")


def _safe(settings: Settings) -> str:
    """The database URL with any password masked (it may sit in an env var, never in a log)."""
    url = settings.effective_database_url
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}{':***' if ':' in creds else ''}@{host}"
    return url


if __name__ == "__main__":
    app()
