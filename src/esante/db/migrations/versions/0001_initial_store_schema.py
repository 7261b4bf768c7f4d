"""initial store schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 08:00:46.732407
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # PostgreSQL allocates logical resource keys from a sequence; SQLite derives them (see fhir/store.py).
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.schema.CreateSequence(sa.Sequence("resource_rid_seq")))
    op.create_table(
        "idx_date",
        sa.Column("rid", sa.BigInteger(), nullable=False),
        sa.Column("res_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=100), nullable=False),
        sa.Column("grp", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("lo", sa.BigInteger(), nullable=False),
        sa.Column("hi", sa.BigInteger(), nullable=False),
    )
    with op.batch_alter_table("idx_date", schema=None) as batch_op:
        batch_op.create_index("ix_idx_date_rid", ["rid"], unique=False)
        batch_op.create_index("ix_idx_date_value", ["res_type", "param", "lo", "hi", "rid"], unique=False)

    op.create_table(
        "idx_number",
        sa.Column("rid", sa.BigInteger(), nullable=False),
        sa.Column("res_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=100), nullable=False),
        sa.Column("grp", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
    )
    with op.batch_alter_table("idx_number", schema=None) as batch_op:
        batch_op.create_index("ix_idx_number_rid", ["rid"], unique=False)
        batch_op.create_index("ix_idx_number_value", ["res_type", "param", "value", "rid"], unique=False)

    op.create_table(
        "idx_quantity",
        sa.Column("rid", sa.BigInteger(), nullable=False),
        sa.Column("res_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=100), nullable=False),
        sa.Column("grp", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("system", sa.String(length=255), nullable=True),
        sa.Column("code", sa.String(length=255), nullable=True),
        sa.Column("unit", sa.String(length=255), nullable=True),
    )
    with op.batch_alter_table("idx_quantity", schema=None) as batch_op:
        batch_op.create_index("ix_idx_quantity_rid", ["rid"], unique=False)
        batch_op.create_index("ix_idx_quantity_value", ["res_type", "param", "code", "value", "rid"], unique=False)

    op.create_table(
        "idx_reference",
        sa.Column("rid", sa.BigInteger(), nullable=False),
        sa.Column("res_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=100), nullable=False),
        sa.Column("grp", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("target_type", sa.String(length=64), nullable=True),
        sa.Column("target_id", sa.String(length=255), nullable=True),
        sa.Column("target_version", sa.String(length=64), nullable=True),
        sa.Column("url", sa.String(length=1024), nullable=True),
        sa.Column("ident_system", sa.String(length=255), nullable=True),
        sa.Column("ident_value", sa.String(length=255), nullable=True),
    )
    with op.batch_alter_table("idx_reference", schema=None) as batch_op:
        batch_op.create_index("ix_idx_reference_ident", ["res_type", "param", "ident_value", "rid"], unique=False)
        batch_op.create_index("ix_idx_reference_rid", ["rid"], unique=False)
        batch_op.create_index("ix_idx_reference_url", ["res_type", "param", "url", "rid"], unique=False)
        batch_op.create_index(
            "ix_idx_reference_value", ["res_type", "param", "target_id", "target_type", "rid"], unique=False
        )

    op.create_table(
        "idx_string",
        sa.Column("rid", sa.BigInteger(), nullable=False),
        sa.Column("res_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=100), nullable=False),
        sa.Column("grp", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column(
            "value_norm",
            sa.String(length=255).with_variant(sa.String(length=255, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("value_exact", sa.String(length=255), nullable=False),
    )
    with op.batch_alter_table("idx_string", schema=None) as batch_op:
        batch_op.create_index("ix_idx_string_rid", ["rid"], unique=False)
        batch_op.create_index("ix_idx_string_value", ["res_type", "param", "value_norm", "rid"], unique=False)

    op.create_table(
        "idx_token",
        sa.Column("rid", sa.BigInteger(), nullable=False),
        sa.Column("res_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=100), nullable=False),
        sa.Column("grp", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("system", sa.String(length=255), nullable=True),
        sa.Column("code", sa.String(length=255), nullable=True),
        sa.Column("text_norm", sa.String(length=255), nullable=True),
    )
    with op.batch_alter_table("idx_token", schema=None) as batch_op:
        batch_op.create_index("ix_idx_token_rid", ["rid"], unique=False)
        batch_op.create_index("ix_idx_token_value", ["res_type", "param", "code", "system", "rid"], unique=False)

    op.create_table(
        "idx_uri",
        sa.Column("rid", sa.BigInteger(), nullable=False),
        sa.Column("res_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=100), nullable=False),
        sa.Column("grp", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("value", sa.String(length=1024), nullable=False),
    )
    with op.batch_alter_table("idx_uri", schema=None) as batch_op:
        batch_op.create_index("ix_idx_uri_rid", ["rid"], unique=False)
        batch_op.create_index("ix_idx_uri_value", ["res_type", "param", "value", "rid"], unique=False)

    op.create_table(
        "resource",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("rid", sa.BigInteger(), nullable=False),
        sa.Column("res_type", sa.String(length=64), nullable=False),
        sa.Column("res_id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.BigInteger(), nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("pk"),
    )
    with op.batch_alter_table("resource", schema=None) as batch_op:
        batch_op.create_index(
            "ix_resource_current_rid",
            ["rid"],
            unique=False,
            postgresql_where=sa.text("is_current"),
            sqlite_where=sa.text("is_current"),
        )
        batch_op.create_index("ix_resource_rid_version", ["rid", "version_id"], unique=False)
        batch_op.create_index("ix_resource_type_updated", ["res_type", "last_updated"], unique=False)
        batch_op.create_index("ix_resource_updated", ["last_updated"], unique=False)
        batch_op.create_index(
            "uq_resource_current",
            ["res_type", "res_id"],
            unique=True,
            postgresql_where=sa.text("is_current"),
            sqlite_where=sa.text("is_current"),
        )
        batch_op.create_index("uq_resource_version", ["res_type", "res_id", "version_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("resource", schema=None) as batch_op:
        batch_op.drop_index("uq_resource_version")
        batch_op.drop_index(
            "uq_resource_current", postgresql_where=sa.text("is_current"), sqlite_where=sa.text("is_current")
        )
        batch_op.drop_index("ix_resource_updated")
        batch_op.drop_index("ix_resource_type_updated")
        batch_op.drop_index("ix_resource_rid_version")
        batch_op.drop_index(
            "ix_resource_current_rid",
            postgresql_where=sa.text("is_current"),
            sqlite_where=sa.text("is_current"),
        )

    op.drop_table("resource")
    with op.batch_alter_table("idx_uri", schema=None) as batch_op:
        batch_op.drop_index("ix_idx_uri_value")
        batch_op.drop_index("ix_idx_uri_rid")

    op.drop_table("idx_uri")
    with op.batch_alter_table("idx_token", schema=None) as batch_op:
        batch_op.drop_index("ix_idx_token_value")
        batch_op.drop_index("ix_idx_token_rid")

    op.drop_table("idx_token")
    with op.batch_alter_table("idx_string", schema=None) as batch_op:
        batch_op.drop_index("ix_idx_string_value")
        batch_op.drop_index("ix_idx_string_rid")

    op.drop_table("idx_string")
    with op.batch_alter_table("idx_reference", schema=None) as batch_op:
        batch_op.drop_index("ix_idx_reference_value")
        batch_op.drop_index("ix_idx_reference_url")
        batch_op.drop_index("ix_idx_reference_rid")
        batch_op.drop_index("ix_idx_reference_ident")

    op.drop_table("idx_reference")
    with op.batch_alter_table("idx_quantity", schema=None) as batch_op:
        batch_op.drop_index("ix_idx_quantity_value")
        batch_op.drop_index("ix_idx_quantity_rid")

    op.drop_table("idx_quantity")
    with op.batch_alter_table("idx_number", schema=None) as batch_op:
        batch_op.drop_index("ix_idx_number_value")
        batch_op.drop_index("ix_idx_number_rid")

    op.drop_table("idx_number")
    with op.batch_alter_table("idx_date", schema=None) as batch_op:
        batch_op.drop_index("ix_idx_date_value")
        batch_op.drop_index("ix_idx_date_rid")

    op.drop_table("idx_date")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.schema.DropSequence(sa.Sequence("resource_rid_seq")))
