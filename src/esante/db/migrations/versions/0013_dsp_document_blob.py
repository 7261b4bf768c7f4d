"""dsp (MHD): the link from each document's Binary to its blob in the blob store (see docs/dsp-mhd.md)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dsp_document_blob",
        sa.Column("binary_id", sa.String(length=64), nullable=False),
        sa.Column("document_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha1", sa.CHAR(length=40), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("binary_id"),
    )
    op.create_index("ix_dsp_document_blob_address", "dsp_document_blob", ["address"])
    op.create_index("ix_dsp_document_blob_patient", "dsp_document_blob", ["patient_id"])


def downgrade() -> None:
    op.drop_index("ix_dsp_document_blob_patient", table_name="dsp_document_blob")
    op.drop_index("ix_dsp_document_blob_address", table_name="dsp_document_blob")
    op.drop_table("dsp_document_blob")
