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
