"""The store's tables, declared once with SQLAlchemy Core (read by Alembic; queries are hand-written SQL).

Layout (see docs/storage.md):

* ``resource`` holds every version of every resource (current + history, one row per version). ``rid`` names
  the logical resource (stable across versions); exactly one row per logical resource has ``is_current``
  (a partial unique index enforces it, which is also what turns a concurrent create race into a conflict).
  ``content`` is the exact JSON bytes returned to clients; a delete is a version with ``deleted`` and no content.
* ``idx_*`` hold the search index values of the *current* version only, one table per search-parameter type,
  rewritten in the same transaction as the resource. ``param`` is the search parameter code; composite
  parameters store their components as ``code$0``, ``code$1`` rows sharing a ``grp`` number.
* Times are microseconds since the Unix epoch (UTC) in BIGINT: identical on both engines and cheap to compare.
"""

from __future__ import annotations

from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Sequence,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

rid_sequence = Sequence("resource_rid_seq", metadata=metadata)

resource = Table(
    "resource",
    metadata,
    Column("pk", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("rid", BigInteger, nullable=False),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", BigInteger, nullable=False),
    Column("is_current", Boolean, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("method", String(8), nullable=False),
    Column("content", LargeBinary, nullable=True),
    Index("uq_resource_version", "res_type", "res_id", "version_id", unique=True),
    Index(
        "uq_resource_current",
        "res_type",
        "res_id",
        unique=True,
        postgresql_where=text("is_current"),
        sqlite_where=text("is_current"),
    ),
    Index("ix_resource_current_rid", "rid", postgresql_where=text("is_current"), sqlite_where=text("is_current")),
    Index("ix_resource_rid_version", "rid", "version_id"),
    Index("ix_resource_updated", "last_updated"),
    Index("ix_resource_type_updated", "res_type", "last_updated"),
)


def _index_table(name: str, *columns: Column, value_index: tuple[str, ...], extra: tuple[Index, ...] = ()) -> Table:
    """An index table: (rid, res_type, param, grp) + the type's value columns."""
    return Table(
        name,
        metadata,
        Column("rid", BigInteger, nullable=False),
        Column("res_type", String(64), nullable=False),
        Column("param", String(100), nullable=False),
        Column("grp", SmallInteger, nullable=False, server_default="0"),
        *columns,
        Index(f"ix_{name}_value", "res_type", "param", *value_index, "rid"),
        Index(f"ix_{name}_rid", "rid"),
        *extra,
    )


# code-point order for prefix ranges on both engines (see fhir/search/values.py)
_CODEPOINT_STRING = String(255).with_variant(String(255, collation="C"), "postgresql")

idx_string = _index_table(
    "idx_string",
    Column("value_norm", _CODEPOINT_STRING, nullable=False),
    Column("value_exact", String(255), nullable=False),
    value_index=("value_norm",),
)

idx_token = _index_table(
    "idx_token",
    Column("system", String(255), nullable=True),
    Column("code", String(255), nullable=True),
    Column("text_norm", String(255), nullable=True),
    value_index=("code", "system"),
)

idx_date = _index_table(
    "idx_date",
    Column("lo", BigInteger, nullable=False),
    Column("hi", BigInteger, nullable=False),
    value_index=("lo", "hi"),
)

idx_number = _index_table(
    "idx_number",
    Column("value", Float, nullable=False),
    value_index=("value",),
)

idx_quantity = _index_table(
    "idx_quantity",
    Column("value", Float, nullable=False),
    Column("system", String(255), nullable=True),
    Column("code", String(255), nullable=True),
    Column("unit", String(255), nullable=True),
    value_index=("code", "value"),
)

idx_reference = _index_table(
    "idx_reference",
    Column("target_type", String(64), nullable=True),
    Column("target_id", String(255), nullable=True),
    Column("target_version", String(64), nullable=True),
    Column("url", String(1024), nullable=True),
    Column("ident_system", String(255), nullable=True),
    Column("ident_value", String(255), nullable=True),
    value_index=("target_id", "target_type"),
    extra=(
        Index("ix_idx_reference_url", "res_type", "param", "url", "rid"),
        Index("ix_idx_reference_ident", "res_type", "param", "ident_value", "rid"),
    ),
)

idx_uri = _index_table(
    "idx_uri",
    Column("value", String(1024), nullable=False),
    value_index=("value",),
)

# The audit trail's hash chain: one row per stored AuditEvent, in append order (see security/audit_trail.py).
# hash = sha256(prev_hash || canonical JSON of the AuditEvent); the first row's prev_hash is 64 zeros.
audit_chain = Table(
    "audit_chain",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("rid", BigInteger, nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("recorded", BigInteger, nullable=False),
    Column("hash", CHAR(64), nullable=False),
    Column("prev_hash", CHAR(64), nullable=False),
)

INDEX_TABLES: dict[str, Table] = {
    "string": idx_string,
    "token": idx_token,
    "date": idx_date,
    "number": idx_number,
    "quantity": idx_quantity,
    "reference": idx_reference,
    "uri": idx_uri,
}

# --- Security: accounts (compte eSanté) and the authorization server's state (see docs/security.md) -------------
# Times in these tables are epoch *seconds* (like JWT NumericDates). Secrets are stored only as hashes: argon2id for
# passwords, sha256 for random one-time values (activation/reset codes, authorization codes, refresh tokens), which
# are long enough that a fast hash is safe.

account = Table(
    "account",
    metadata,
    Column("id", String(64), primary_key=True),  # UUID
    Column("kind", String(16), nullable=False),  # patient | professional | staff
    Column("username", String(128), nullable=False),
    Column("status", String(16), nullable=False),  # inactive | active | suspended | closed
    Column("display_name", String(255), nullable=True),
    Column("patient_id", String(64), nullable=True),  # Patient resource id (patient accounts)
    Column("practitioner_id", String(64), nullable=True),  # Practitioner resource id (professional accounts)
    Column("ehealth_id", String(16), nullable=True),  # the professional's eHealthID
    Column("roles", String(255), nullable=False, server_default=""),  # staff roles, space-separated
    Column("matricule", String(16), nullable=True),  # checked at activation
    Column("email", String(255), nullable=True),
    Column("mobile", String(32), nullable=True),
    Column("password_hash", String(255), nullable=True),  # argon2id
    Column("totp_secret", String(64), nullable=True),
    Column("totp_enabled", Boolean, nullable=False, server_default=text("false")),
    Column("totp_last_counter", BigInteger, nullable=True),  # a TOTP code is accepted once
    Column("activation_code_hash", CHAR(64), nullable=True),
    Column("activation_expires", BigInteger, nullable=True),
    Column("reset_code_hash", CHAR(64), nullable=True),
    Column("reset_expires", BigInteger, nullable=True),
    Column("failed_logins", Integer, nullable=False, server_default="0"),
    Column("locked_until", BigInteger, nullable=True),
    Column("tokens_valid_after", BigInteger, nullable=False, server_default="0"),  # older tokens are refused
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("uq_account_username", "username", unique=True),
    Index("ix_account_patient", "patient_id"),
    Index("ix_account_ehealth_id", "ehealth_id"),
)

# A DSP assistant: a patient account allowed to act for another patient (revoked links are kept for the record).
account_delegation = Table(
    "account_delegation",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("account_id", String(64), nullable=False),  # the assistant's account
    Column("patient_id", String(64), nullable=False),  # the Patient they act for
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Index("ix_account_delegation_account", "account_id", "patient_id"),
    Index("ix_account_delegation_patient", "patient_id"),
)

# Registered OAuth clients: establishment software (SMART Backend Services, private_key_jwt) and user-facing apps
# (authorization code + PKCE; public, or confidential with private_key_jwt).
oauth_client = Table(
    "oauth_client",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("kind", String(32), nullable=False),  # hospital | laboratory | pharmacy | gp-software | cve | cgdis | app
    Column("status", String(16), nullable=False),  # active | suspended
    Column("public", Boolean, nullable=False, server_default=text("false")),
    Column("auth_method", String(32), nullable=False),  # private_key_jwt | none
    Column("jwks", Text, nullable=True),  # JSON Web Key Set of the client's public keys
    Column("redirect_uris", Text, nullable=False, server_default=""),  # JSON list
    Column("grant_types", Text, nullable=False, server_default=""),  # space-separated
    Column("scopes", Text, nullable=False, server_default=""),  # the most the client may ever be granted
    Column("organization", String(255), nullable=True),  # the establishment (Organization reference or name)
    Column("tokens_valid_after", BigInteger, nullable=False, server_default="0"),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

oauth_code = Table(
    "oauth_code",
    metadata,
    Column("code_hash", CHAR(64), primary_key=True),
    Column("client_id", String(128), nullable=False),
    Column("account_id", String(64), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("person_id", String(64), nullable=True),  # the patient context chosen at consent
    Column("subject_role", String(16), nullable=False),  # patient | assistant | professional | staff
    Column("code_challenge", String(128), nullable=False),  # PKCE S256
    Column("nonce", String(255), nullable=True),
    Column("purpose_of_use", String(16), nullable=True),  # v3 ActReason code asked at authorization
    Column("access_jti", String(64), nullable=True),  # the access token issued from it (revoked if reused)
    Column("expires_at", BigInteger, nullable=False),
    Column("used", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", BigInteger, nullable=False),
)

oauth_refresh_token = Table(
    "oauth_refresh_token",
    metadata,
    Column("token_hash", CHAR(64), primary_key=True),
    Column("family", String(64), nullable=False),  # one family per authorization; reuse revokes the family
    Column("client_id", String(128), nullable=False),
    Column("account_id", String(64), nullable=False),
    Column("scope", Text, nullable=False),
    Column("person_id", String(64), nullable=True),
    Column("subject_role", String(16), nullable=False),
    Column("purpose_of_use", String(16), nullable=True),
    Column("access_jti", String(64), nullable=True),  # the access token issued with it (revoked with the family)
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
    Column("revoked", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_oauth_refresh_token_family", "family"),
    Index("ix_oauth_refresh_token_account", "account_id"),
)

# Access tokens revoked before their expiry (revocation endpoint); rows past expires_at may be purged.
oauth_revoked_token = Table(
    "oauth_revoked_token",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),
)

# jti of client assertions (private_key_jwt) already used: a replayed assertion is refused until it expires.
oauth_assertion_jti = Table(
    "oauth_assertion_jti",
    metadata,
    Column("jti_key", CHAR(64), primary_key=True),  # sha256(client_id || jti)
    Column("expires_at", BigInteger, nullable=False),
)

# The audit journal: AuditEvents written durably by the request that caused them, before its answer, and moved into
# the store and the hash chain by the auditor's chainer a few milliseconds later (see security/audit_trail.py).
audit_journal = Table(
    "audit_journal",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("res_id", String(64), nullable=False),  # the AuditEvent's id, assigned when journaled
    Column("content", LargeBinary, nullable=False),  # the AuditEvent's JSON
)

# --- MPI (see mpi/model.py and docs/mpi.md) ------------------------------------------------------------------------

# Identifier domains: one per establishment (its OID system) with the one client allowed to feed it.
mpi_domain = Table(
    "mpi_domain",
    metadata,
    Column("system", String(255), primary_key=True),  # urn:oid:...
    Column("name", String(255), nullable=False),
    Column("organization", String(255), nullable=True),
    Column("source_client_id", String(128), nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

# Every eSanté patient identifier ever assigned (never given twice, even after a merge or a deletion).
mpi_esante_id = Table(
    "mpi_esante_id",
    metadata,
    Column("esante_id", CHAR(10), primary_key=True),
    Column("res_id", String(64), nullable=False),
    Column("assigned_at", BigInteger, nullable=False),
    Index("ix_mpi_esante_id_res", "res_id"),
)

# The matching engine's parameter sets (m/u, prior, thresholds), versioned by content; one is active.
mpi_match_parameters = Table(
    "mpi_match_parameters",
    metadata,
    Column("version", String(32), primary_key=True),  # fs-<12 hex>
    Column("created_at", BigInteger, nullable=False),
    Column("activated_at", BigInteger, nullable=True),
    Column("active", Boolean, nullable=False),
    Column("source", String(255), nullable=False),
    Column("content", Text, nullable=False),
)

# --- HPD (see hpd/model.py and docs/hpd.md) ------------------------------------------------------------------------

# Every eHealthID ever assigned to a professional (never given twice, even after a withdrawal or a deletion).
hpd_ehealth_id = Table(
    "hpd_ehealth_id",
    metadata,
    Column("ehealth_id", CHAR(10), primary_key=True),
    Column("practitioner_id", String(64), nullable=False),  # the Practitioner's resource id
    Column("assigned_at", BigInteger, nullable=False),
    Index("ix_hpd_ehealth_id_practitioner", "practitioner_id"),
)

# The right to practise as the HPD recorded it (hpd/practise.py, docs/hpd-practise.md): one row per professional
# whose right ever changed (none: never lost, active); the bearer gate reads it on every professional's request.
hpd_right_to_practise = Table(
    "hpd_right_to_practise",
    metadata,
    Column("practitioner_id", String(64), primary_key=True),
    Column("ehealth_id", CHAR(10), nullable=True),
    Column("status", String(16), nullable=False),  # active | suspended | withdrawn
    Column("effective", String(10), nullable=True),  # ISO date the status took effect
    Column("reason", Text, nullable=True),
    Column("changed_at", BigInteger, nullable=False),  # epoch microseconds
    Column("tokens_valid_after", BigInteger, nullable=False),  # epoch seconds: older grants are refused
    Index("ix_hpd_right_to_practise_ehealth_id", "ehealth_id"),
)

# Every change of a right to practise: who, when, why, from where (append-only; the AuditEvent names the same).
hpd_right_to_practise_history = Table(
    "hpd_right_to_practise_history",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("practitioner_id", String(64), nullable=False),
    Column("ehealth_id", CHAR(10), nullable=True),
    Column("old_status", String(16), nullable=False),
    Column("new_status", String(16), nullable=False),
    Column("effective", String(10), nullable=False),
    Column("reason", Text, nullable=False),
    Column("source", String(16), nullable=False),  # import | administrator
    Column("agent_kind", String(16), nullable=False),
    Column("agent_id", String(255), nullable=False),
    Column("agent_display", String(255), nullable=True),
    Column("recorded_at", BigInteger, nullable=False),  # epoch microseconds
    Column("audit_event", String(64), nullable=True),  # the AuditEvent's id
    Index("ix_hpd_right_to_practise_history_practitioner", "practitioner_id", "id"),
)

# PractitionerRoles made inactive because their practitioner lost the right: the restoration makes them active again.
hpd_practise_held_role = Table(
    "hpd_practise_held_role",
    metadata,
    Column("practitioner_id", String(64), primary_key=True),
    Column("role_id", String(64), primary_key=True),
    Column("held_at", BigInteger, nullable=False),  # epoch microseconds
)

# Notifications' e-mail outbox (notify/, docs/notifications.md): one row per notification, written in the same
# transaction as its Communication; the unique idempotency key is what makes "never twice" hold under concurrency.
# Times are epoch seconds.
notify_outbox = Table(
    "notify_outbox",
    metadata,
    Column("id", String(64), primary_key=True),  # the Communication's id
    Column("idempotency_key", String(255), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("recipient", String(130), nullable=False),  # Patient/<id> | Practitioner/<id>
    Column("created_at", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),  # pending | sent | skipped | dead | expired
    Column("reason", Text, nullable=True),  # why skipped or dead, or the last failure (never an address)
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("claimed_until", BigInteger, nullable=True),  # a delivery worker's lease on the row
    Column("claim_token", String(36), nullable=True),
    Column("sent_at", BigInteger, nullable=True),
    Index("uq_notify_outbox_key", "idempotency_key", unique=True),
    Index("ix_notify_outbox_due", "status", "next_attempt_at"),
)

# A recipient's e-mail choice, for every kind ('*') or one kind (which wins). No row: the platform's default.
notify_preference = Table(
    "notify_preference",
    metadata,
    Column("recipient", String(130), primary_key=True),
    Column("kind", String(64), primary_key=True),
    Column("email", Boolean, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# --- DSP, the shared care record (dsp/, docs/dsp.md). Times are epoch seconds. ---------------------------------
# One row per person whose DSP was ever opened (pending in the refusal window, active, refused, closed, destroyed).
dsp_record = Table(
    "dsp_record",
    metadata,
    Column("patient_id", String(64), primary_key=True),  # the certified Patient's id
    Column("status", String(16), nullable=False),  # pending | active | refused | closed | destroyed
    Column("opened_at", BigInteger, nullable=False),
    Column("window_ends_at", BigInteger, nullable=False),  # a pending DSP is active from then on
    Column("activated_at", BigInteger, nullable=True),
    Column("refused_at", BigInteger, nullable=True),
    Column("closed_at", BigInteger, nullable=True),
    Column("retention_until", BigInteger, nullable=True),  # a closed DSP is destroyed after this
    Column("destroyed_at", BigInteger, nullable=True),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_dsp_record_due", "status", "retention_until"),
)

# The proof of each destruction: what (whose DSP, how many resources of each type), when, and a SHA-256 over the
# destroyed versions' ids and content hashes; no health data.
dsp_destruction = Table(
    "dsp_destruction",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("patient_id", String(64), nullable=False),
    Column("closed_at", BigInteger, nullable=False),
    Column("retention_until", BigInteger, nullable=False),
    Column("destroyed_at", BigInteger, nullable=False),
    Column("counts", Text, nullable=False),  # JSON object: resource type (or blob kind) → count
    Column("digest", CHAR(64), nullable=False),
    Column("audit_event", String(64), nullable=True),
    Index("ix_dsp_destruction_patient", "patient_id"),
)

# The grants, derived from the DSP's Consent resources in the same transaction (the Consent is the source of truth;
# this is its index for the access rule's SQL). One row per DSP Consent.
dsp_grant = Table(
    "dsp_grant",
    metadata,
    Column("rid", BigInteger, primary_key=True, autoincrement=False),  # the Consent's rid
    Column("consent_id", String(64), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),  # trusted-circle | referent | relationship | emergency | block | ...
    Column("practitioner_id", String(64), nullable=True),  # the professional it names (None: opt-out, assistant)
    Column("status", String(16), nullable=False),  # active | inactive
    Column("starts_at", BigInteger, nullable=True),
    Column("ends_at", BigInteger, nullable=True),  # None: permanent
    Index("ix_dsp_grant_practitioner", "practitioner_id", "kind", "patient_id"),
    Index("ix_dsp_grant_patient", "patient_id", "kind"),
)

# Binary.securityContext → DocumentReference, the one link the search index does not hold (no R4 search parameter):
# a Binary of a DSP document is governed by its document's access.
dsp_binary = Table(
    "dsp_binary",
    metadata,
    Column("rid", BigInteger, primary_key=True, autoincrement=False),  # the Binary's rid
    Column("document_id", String(64), nullable=False),  # the DocumentReference's id
    Index("ix_dsp_binary_document", "document_id"),
)

# A DSP document's bytes (dsp/mhd/, docs/dsp-mhd.md): its Binary holds no data but this link to its blob in the blob
# store, written in the ITI-65 transaction; patient_id lets a DSP's destruction find its blobs, address lets a blob be
# destroyed only when no document uses it any more.
dsp_document_blob = Table(
    "dsp_document_blob",
    metadata,
    Column("binary_id", String(64), primary_key=True),  # the Binary's id
    Column("document_id", String(64), nullable=False),  # the DocumentReference's id
    Column("patient_id", String(64), nullable=False),  # the certified Patient whose DSP holds the document
    Column("address", String(64), nullable=False),  # the blob's address (esante.blobs)
    Column("size", BigInteger, nullable=False),
    Column("sha1", CHAR(40), nullable=False),  # hexadecimal
    Column("content_type", String(255), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_dsp_document_blob_address", "address"),
    Index("ix_dsp_document_blob_patient", "patient_id"),
)

# WSE (docs/wse.md): each CCSS affiliation (a Coverage) as the eligibility check reads it, derived from the Coverage in
# the same transaction by store hooks; one indexed SELECT by matricule answers a check.
wse_affiliation = Table(
    "wse_affiliation",
    metadata,
    Column("rid", BigInteger, primary_key=True, autoincrement=False),  # the Coverage's rid
    Column("coverage_id", String(64), nullable=False),
    Column("affiliation_id", String(64), nullable=False),  # the CCSS's affiliation number (the import's key)
    Column("matricule", String(13), nullable=False),
    Column("insurer", String(32), nullable=False),  # CNS, CMFEP, CMFEC, EMCFL, FOREIGN-<country>
    Column("coverage_type", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # active | cancelled
    Column("start_date", String(10), nullable=False),  # ISO dates (compare as text)
    Column("end_date", String(10), nullable=True),  # inclusive; None: open-ended
    Index("ix_wse_affiliation_matricule", "matricule"),
    Index("ix_wse_affiliation_key", "affiliation_id"),
)

# WSE uses per day, caller kind (pharmacy | laboratory | cgdis) and operation, for the statistics bulletin: counters
# only, nothing about the persons checked (the audit trail records each use).
wse_usage = Table(
    "wse_usage",
    metadata,
    Column("day", String(10), primary_key=True),  # ISO date (Luxembourg time)
    Column("caller_kind", String(16), primary_key=True),
    Column("operation", String(32), primary_key=True),  # eligibility | prescriber
    Column("uses", BigInteger, nullable=False),
)

# --- CVE, the vaccination record (cve/, docs/cve.md). Times are epoch seconds. -----------------------------------
# The due doses already reminded: one row per (patient, dose key) written in the transaction of the notification that
# reminded it; the primary key is what makes "never twice for the same due dose" hold under concurrency.
cve_reminder = Table(
    "cve_reminder",
    metadata,
    Column("patient_id", String(64), primary_key=True),
    Column("dose_key", String(255), primary_key=True),  # vaccine group | series type | dose number | earliest date
    Column("notification_id", String(64), nullable=False),  # the Communication that reminded it
    Column("created_at", BigInteger, nullable=False),
)

# The DSP-consent queue: a row per patient whose vaccination-history document may need filing again, upserted in the
# transaction of every change of their record or of their DSP-sharing consent; the sync worker files the document
# through the DSP's MHD path after commit and records the outcome here.
cve_dsp_sync = Table(
    "cve_dsp_sync",
    metadata,
    Column("patient_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),  # pending | waiting | filed | not-filed | stopped
    Column("reason", String(255), nullable=True),  # why not filed (dsp-closed, …) or the last failure; no health data
    Column("requested_at", BigInteger, nullable=False),  # epoch microseconds of the last change (compare-and-set)
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("claimed_until", BigInteger, nullable=True),  # a sync worker's lease on the row
    Column("claim_token", String(36), nullable=True),
    Column("document_id", String(64), nullable=True),  # the last DocumentReference filed
    Column("content_hash", String(64), nullable=True),  # SHA-256 of the history it holds (unchanged → not refiled)
    Column("filed_at", BigInteger, nullable=True),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_cve_dsp_sync_due", "status", "next_attempt_at"),
)
