"""wse: the affiliations the eligibility check reads (derived from Coverage) and the use counters (see docs/wse.md)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wse_affiliation",
        sa.Column("rid", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("coverage_id", sa.String(length=64), nullable=False),
        sa.Column("affiliation_id", sa.String(length=64), nullable=False),
        sa.Column("matricule", sa.String(length=13), nullable=False),
        sa.Column("insurer", sa.String(length=32), nullable=False),
        sa.Column("coverage_type", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("start_date", sa.String(length=10), nullable=False),
        sa.Column("end_date", sa.String(length=10), nullable=True),
        sa.PrimaryKeyConstraint("rid"),
    )
    op.create_index("ix_wse_affiliation_matricule", "wse_affiliation", ["matricule"])
    op.create_index("ix_wse_affiliation_key", "wse_affiliation", ["affiliation_id"])
    op.create_table(
        "wse_usage",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("caller_kind", sa.String(length=16), nullable=False),
        sa.Column("operation", sa.String(length=32), nullable=False),
        sa.Column("uses", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "caller_kind", "operation"),
    )


def downgrade() -> None:
    op.drop_table("wse_usage")
    op.drop_index("ix_wse_affiliation_key", table_name="wse_affiliation")
    op.drop_index("ix_wse_affiliation_matricule", table_name="wse_affiliation")
    op.drop_table("wse_affiliation")
