"""cve: the doses already reminded (never twice) and the DSP-consent sync queue (see docs/cve.md)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cve_reminder",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("dose_key", sa.String(length=255), nullable=False),
        sa.Column("notification_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("patient_id", "dose_key"),
    )
    op.create_table(
        "cve_dsp_sync",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.Column("requested_at", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=False),
        sa.Column("claimed_until", sa.BigInteger(), nullable=True),
        sa.Column("claim_token", sa.String(length=36), nullable=True),
        sa.Column("document_id", sa.String(length=64), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("filed_at", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("patient_id"),
    )
    op.create_index("ix_cve_dsp_sync_due", "cve_dsp_sync", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_cve_dsp_sync_due", table_name="cve_dsp_sync")
    op.drop_table("cve_dsp_sync")
    op.drop_table("cve_reminder")
