"""dsp: the records' lifecycle, the proofs of destruction, the grants derived from Consents, Binary links
(see docs/dsp.md)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dsp_record",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("opened_at", sa.BigInteger(), nullable=False),
        sa.Column("window_ends_at", sa.BigInteger(), nullable=False),
        sa.Column("activated_at", sa.BigInteger(), nullable=True),
        sa.Column("refused_at", sa.BigInteger(), nullable=True),
        sa.Column("closed_at", sa.BigInteger(), nullable=True),
        sa.Column("retention_until", sa.BigInteger(), nullable=True),
        sa.Column("destroyed_at", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("patient_id"),
    )
    op.create_index("ix_dsp_record_due", "dsp_record", ["status", "retention_until"])
    op.create_table(
        "dsp_destruction",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("closed_at", sa.BigInteger(), nullable=False),
        sa.Column("retention_until", sa.BigInteger(), nullable=False),
        sa.Column("destroyed_at", sa.BigInteger(), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("digest", sa.CHAR(length=64), nullable=False),
        sa.Column("audit_event", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_dsp_destruction_patient", "dsp_destruction", ["patient_id"])
    op.create_table(
        "dsp_grant",
        sa.Column("rid", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("consent_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("practitioner_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("starts_at", sa.BigInteger(), nullable=True),
        sa.Column("ends_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("rid"),
    )
    op.create_index("ix_dsp_grant_practitioner", "dsp_grant", ["practitioner_id", "kind", "patient_id"])
    op.create_index("ix_dsp_grant_patient", "dsp_grant", ["patient_id", "kind"])
    op.create_table(
        "dsp_binary",
        sa.Column("rid", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("document_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("rid"),
    )
    op.create_index("ix_dsp_binary_document", "dsp_binary", ["document_id"])


def downgrade() -> None:
    op.drop_index("ix_dsp_binary_document", table_name="dsp_binary")
    op.drop_table("dsp_binary")
    op.drop_index("ix_dsp_grant_patient", table_name="dsp_grant")
    op.drop_index("ix_dsp_grant_practitioner", table_name="dsp_grant")
    op.drop_table("dsp_grant")
    op.drop_index("ix_dsp_destruction_patient", table_name="dsp_destruction")
    op.drop_table("dsp_destruction")
    op.drop_index("ix_dsp_record_due", table_name="dsp_record")
    op.drop_table("dsp_record")
