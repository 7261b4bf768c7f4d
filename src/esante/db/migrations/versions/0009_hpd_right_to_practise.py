"""hpd: the right to practise, its history and the roles it holds inactive (see docs/hpd-practise.md)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hpd_right_to_practise",
        sa.Column("practitioner_id", sa.String(length=64), nullable=False),
        sa.Column("ehealth_id", sa.CHAR(length=10), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("effective", sa.String(length=10), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("changed_at", sa.BigInteger(), nullable=False),
        sa.Column("tokens_valid_after", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("practitioner_id"),
    )
    op.create_index("ix_hpd_right_to_practise_ehealth_id", "hpd_right_to_practise", ["ehealth_id"])
    op.create_table(
        "hpd_right_to_practise_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("practitioner_id", sa.String(length=64), nullable=False),
        sa.Column("ehealth_id", sa.CHAR(length=10), nullable=True),
        sa.Column("old_status", sa.String(length=16), nullable=False),
        sa.Column("new_status", sa.String(length=16), nullable=False),
        sa.Column("effective", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("agent_kind", sa.String(length=16), nullable=False),
        sa.Column("agent_id", sa.String(length=255), nullable=False),
        sa.Column("agent_display", sa.String(length=255), nullable=True),
        sa.Column("recorded_at", sa.BigInteger(), nullable=False),
        sa.Column("audit_event", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_hpd_right_to_practise_history_practitioner",
        "hpd_right_to_practise_history",
        ["practitioner_id", "id"],
    )
    op.create_table(
        "hpd_practise_held_role",
        sa.Column("practitioner_id", sa.String(length=64), nullable=False),
        sa.Column("role_id", sa.String(length=64), nullable=False),
        sa.Column("held_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("practitioner_id", "role_id"),
    )


def downgrade() -> None:
    op.drop_table("hpd_practise_held_role")
    op.drop_index("ix_hpd_right_to_practise_history_practitioner", table_name="hpd_right_to_practise_history")
    op.drop_table("hpd_right_to_practise_history")
    op.drop_index("ix_hpd_right_to_practise_ehealth_id", table_name="hpd_right_to_practise")
    op.drop_table("hpd_right_to_practise")
