"""Platform configuration shared by the server and every CLI command.

One source of truth so that an operator's command acts on the running platform's data: defaults point at
``./var`` (SQLite file + blob folder); a TOML file (``ESANTE_CONFIG`` or ``./esante.toml``) and ``ESANTE_*``
environment variables override them, in that order of increasing precedence.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

_ENV_PREFIX = "ESANTE_"


@dataclass(frozen=True)
class Settings:
    """Every tunable of the platform; see README "Configuration" for the matching env vars."""

    var_dir: Path = Path("var")
    database_url: str = ""  # empty → sqlite file under var_dir
    blob_dir: Path | None = None  # empty → var_dir/blobs
    # --- document blob store (docs/blob-store.md): master keys wrap each blob's data key; secrets, never in git ---
    blob_keys: str = ""  # "kid:base64key,kid:base64key" (the env var ESANTE_BLOB_KEYS); masked by `esante config`
    blob_keys_file: Path | None = None  # file of "kid:base64key" lines, mode 0600, outside var_dir and the repo
    blob_active_key: str = ""  # kid that wraps new data keys; empty → the only configured key
    blob_segment_size: int = 64 * 1024  # plaintext bytes per encrypted segment of new blobs (4 KiB .. 16 MiB)
    host: str = "127.0.0.1"
    port: int = 8080
    base_url: str = ""  # public base URL; empty → derived from the request
    max_body_bytes: int = 20 * 1024 * 1024
    default_page_size: int = 20
    max_page_size: int = 1000
    max_bundle_entries: int = 10_000
    db_pool_size: int = 10
    log_level: str = "info"
    warm_up: bool = True  # build definitions, index plans and validation models before serving
    signing_alg: str = "ES256"  # algorithm of new signing keys: ES256 (P-256) or RS256 (RSA 3072)
    token_issuer: str = ""  # `iss` of access tokens; empty → base_url without /fhir, else http://host:port
    token_ttl: int = 3600  # default access token lifetime, seconds
    token_max_ttl: int = 86400  # longest lifetime any token may be minted with, seconds
    key_grace_period: int = 172800  # a retired key stays published this long (≥ token_max_ttl), seconds
    # record a BALP AuditEvent for every REST interaction (hash-chained). Always on in production; switching it
    # off exists for benchmarks that measure the trail's own cost (the server logs a warning).
    audit_enabled: bool = True
    # PostgreSQL: `esante serve` chains the trail in a process of its own (the workers only journal), so a
    # request never waits behind a chain batch on its event loop; off: each worker chains in the background
    audit_chain_process: bool = True
    # whether this process chains the journal in the background (set to false by `esante serve` for its workers
    # when the chain process runs; readers of the trail still chain what is pending before they read)
    audit_background_chain: bool = True
    roles_file: str = ""  # JSON table of what each staff role may do; empty → the packaged default (roles.json)
    # PostgreSQL: a search scoped to one patient in the default order runs on cached generic plans (no planning per
    # execution; fhir/search/plan_choice.py); off: every search is planned with its values
    search_cached_plans_for_one_patient: bool = True
    # --- DSP, the shared care record (docs/dsp.md): PLATFORM.md's defaults ---
    dsp_refusal_window_days: int = 30  # days a person has to refuse a new DSP before it opens (0: opens at once)
    dsp_retention_years: int = 10  # years a closed DSP is kept before its destruction (`esante dsp destroy-due`)
    dsp_relationship_days: int = 120  # days a therapeutic relationship lasts after the professional's last declaration
    dsp_emergency_hours: int = 24  # hours an emergency (break-the-glass) access lasts
    dsp_assistants_may_appoint: bool = False  # a DSP assistant may appoint other assistants (the holder always may)
    dsp_open_on_certification: bool = True  # open a DSP for each new certified identity (store hook)
    dsp_habilitation_file: str = ""  # profession x document class matrix (JSON); empty → the packaged one
    # a system client acting as the establishment (no professional named) reads DSP documents by its scopes alone;
    # off: only professionals (and clients acting for one) read a DSP, within the patient's grants
    dsp_establishment_reads: bool = False
    # seconds between the server's runs of the job that tells each person of their new DSP and its refusal window
    # (a `dsp-opened` notification; 0: the server does not, `esante dsp notify-openings` does)
    dsp_opening_notice_interval: int = 60
    # --- DSP documents over IHE MHD (docs/dsp-mhd.md) ---
    # media types a document may have (ITI-65); the bytes are checked against the declared type
    mhd_content_types: str = (
        "application/pdf,text/plain,application/fhir+json,application/fhir+xml,"
        "application/hl7-v3+xml,text/xml,application/xml"
    )
    mhd_pdfa_required: bool = True  # a PDF must declare PDF/A conformance (XMP pdfaid:part)
    # the weakest MPI match grade accepted for a patient sent as demographics only (certain | probable | none)
    mhd_patient_match_grade: str = "certain"
    mhd_serve_superseded: bool = False  # ITI-68 serves a replaced document's content (the guide says 410)
    mhd_document_classes_file: str = ""  # FHIR Bundle of the classes and LOINC mapping; empty → the packaged one
    # --- accounts (compte eSanté) ---
    password_min_length: int = 12
    patient_totp_required: bool = True  # professionals and staff always need a second factor
    activation_code_ttl: int = 90 * 86400  # validity of an activation letter's code, seconds
    reset_code_ttl: int = 3 * 86400  # validity of a password-reset code, seconds
    lockout_threshold: int = 5  # consecutive failed logins before the account locks
    lockout_seconds: int = 900  # how long a locked account stays locked
    # --- authorization server (OAuth 2 / SMART / IHE IUA) ---
    auth_code_ttl: int = 60  # authorization codes, seconds (single use)
    refresh_token_ttl: int = 30 * 86400  # refresh tokens (rotated at each use), seconds
    rate_limit_login: int = 20  # login attempts per minute per client address (per worker)
    rate_limit_token: int = 120  # token/introspection/revocation requests per minute per client address (per worker)
    # public directory searches without a token (PractitionerRole/$hpd-directory), per minute per client address
    rate_limit_directory: int = 60
    # --- notifications (docs/notifications.md): stored Communications + e-mail through SMTP ---
    notify_smtp_host: str = ""  # empty → no e-mail is sent (the stored notifications are still created)
    notify_smtp_port: int = 587
    notify_smtp_security: str = "starttls"  # starttls | tls (implicit, port 465) | none (trusted relay only)
    notify_smtp_username: str = ""
    notify_smtp_password: str = ""  # a secret: ESANTE_NOTIFY_SMTP_PASSWORD, never in a file of the repository
    notify_smtp_timeout: int = 30  # seconds per SMTP command
    notify_smtp_ca_file: str = ""  # CA bundle that verifies the SMTP server; empty → the system's CAs
    notify_from_address: str = "eSante <no-reply@esante.lu>"
    notify_reply_to: str = ""
    notify_portal_url: str = ""  # the address the e-mail tells people to sign in at; empty → the issuer's URL
    notify_email_languages: str = "fr,de,en"  # languages of the e-mail's text, in order
    notify_templates_file: str = ""  # JSON replacing the packaged e-mail texts (notify/data/kinds.json layout)
    notify_email_default: bool = True  # e-mail recipients who made no choice (they may opt out)
    notify_worker_enabled: bool = True  # the server's background delivery task (when an SMTP host is set)
    notify_worker_interval: int = 30  # seconds between the background task's runs
    notify_rate_per_run: int = 200  # e-mails sent per run at most
    notify_max_attempts: int = 8  # failed attempts before an e-mail goes to the dead letters
    notify_retry_base: int = 60  # seconds before the first retry, doubled at each failure ...
    notify_retry_max: int = 3600  # ... up to this
    notify_email_max_age: int = 7 * 86400  # a notification older than this is no longer e-mailed, seconds
    # --- CVE, the vaccination record (docs/cve.md) ---
    # the schedule the recommendations follow: "lu" (the Luxembourg schedule packaged in esante/cve/schedules/lu)
    # or a folder of CDSi supporting-data XML (e.g. the CDC's supporting-data-4.64)
    cve_schedule: str = "lu"
    cve_products_file: str = ""  # vaccine product table (GTIN → product, CVX, MVX); empty → the packaged one
    # professions whose members vaccinate by their profession alone; the others need the HPD qualification
    # urn:esante:cve:qualification|trained-vaccinator ("vaccinateur formé") on their Practitioner
    cve_vaccinator_professions: str = "medecin"
    # reminders of due and overdue vaccinations (`esante cve reminders`, docs/cve.md "Reminders"): the server runs the
    # job itself every cve_reminders_interval_hours hours (0, the default: it does not; a timer runs the command)
    cve_reminders_interval_hours: int = 0
    cve_reminders_batch: int = 200  # patients per transaction of the reminders job
    cve_reminders_lead_days: int = 14  # a due dose is reminded from its recommended date less these days
    # the DSP consent (docs/cve.md "DSP consent"): seconds between the server's runs of the worker that files the
    # vaccination-history document of consenting patients after each change (0: off; `esante cve dsp-sync` runs it)
    cve_dsp_sync_interval: int = 10
    # --- WSE, affiliation and right-to-prescribe checks (docs/wse.md) ---
    wse_client_kinds: str = "pharmacy,laboratory,cgdis"  # OAuth client kinds that may use the WSE operations
    wse_insurers_file: str = ""  # the funds (JSON, data/insurers.json layout); empty → the packaged list
    wse_prescribing_file: str = ""  # which professions may prescribe what (JSON); empty → the packaged table
    wse_past_days: int = 3660  # how far back a date of service may be (days; further: "date-out-of-range")
    wse_future_days: int = 31  # how far ahead a date of service may be (days)
    wse_usage_flush_seconds: int = 1  # how often each process adds its use counters to wse_usage
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'esante.sqlite3').resolve()}"

    @property
    def effective_blob_dir(self) -> Path:
        return self.blob_dir if self.blob_dir is not None else self.var_dir / "blobs"

    @property
    def key_dir(self) -> Path:
        """The server's signing keys (PEM files, mode 0600): never inside the repository."""
        return self.var_dir / "keys"

    @property
    def effective_audience(self) -> str:
        """The FHIR base URL access tokens are minted for (``aud``)."""
        if self.base_url:
            return self.base_url.rstrip("/")
        return f"http://{self.host}:{self.port}/fhir"

    @property
    def effective_issuer(self) -> str:
        """The authorization server's identifier (``iss``)."""
        if self.token_issuer:
            return self.token_issuer.rstrip("/")
        audience = self.effective_audience
        return audience[: -len("/fhir")] if audience.endswith("/fhir") else audience


def _coerce(name: str, raw: Any) -> Any:
    """Turn a raw env/TOML value into the type of the Settings field called ``name``."""
    kind = {f.name: f.type for f in fields(Settings)}[name]
    text = str(kind)
    if "bool" in text and isinstance(raw, str):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if "int" in text and not isinstance(raw, int):
        return int(raw)
    if "Path" in text:
        return Path(raw) if raw not in ("", None) else None
    return raw


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Build the settings: defaults < config file < environment < explicit overrides (CLI flags)."""
    settings = Settings()
    known = {f.name for f in fields(Settings)} - {"extra"}
    path = Path(config_file) if config_file else None
    if path is None and os.environ.get(_ENV_PREFIX + "CONFIG"):
        path = Path(os.environ[_ENV_PREFIX + "CONFIG"])
    if path is None and Path("esante.toml").exists():
        path = Path("esante.toml")
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    if path is not None:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
        for key, value in data.items():
            (values if key in known else extra)[key] = value
    for key in known:
        env_value = os.environ.get(_ENV_PREFIX + key.upper())
        if env_value is not None:
            values[key] = env_value
    for key, value in overrides.items():
        if value is not None:
            values[key] = value
    coerced = {key: _coerce(key, value) for key, value in values.items()}
    if "var_dir" in coerced and coerced["var_dir"] is None:
        del coerced["var_dir"]
    return replace(settings, extra=extra, **coerced)
