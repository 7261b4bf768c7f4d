"""audit chain

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 09:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_chain",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("rid", sa.BigInteger(), nullable=False),
        sa.Column("res_id", sa.String(length=64), nullable=False),
        sa.Column("recorded", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.CHAR(length=64), nullable=False),
        sa.Column("prev_hash", sa.CHAR(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )


def downgrade() -> None:
    op.drop_table("audit_chain")
