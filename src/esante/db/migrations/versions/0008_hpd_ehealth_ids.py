"""hpd: the ledger of assigned eHealthIDs (see docs/hpd.md)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hpd_ehealth_id",
        sa.Column("ehealth_id", sa.CHAR(length=10), nullable=False),
        sa.Column("practitioner_id", sa.String(length=64), nullable=False),
        sa.Column("assigned_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("ehealth_id"),
    )
    op.create_index("ix_hpd_ehealth_id_practitioner", "hpd_ehealth_id", ["practitioner_id"])


def downgrade() -> None:
    op.drop_index("ix_hpd_ehealth_id_practitioner", table_name="hpd_ehealth_id")
    op.drop_table("hpd_ehealth_id")
