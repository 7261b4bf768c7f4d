"""notify: the notifications' e-mail outbox and the recipients' e-mail choices (see docs/notifications.md)

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-02 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notify_outbox",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=130), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=False),
        sa.Column("claimed_until", sa.BigInteger(), nullable=True),
        sa.Column("claim_token", sa.String(length=36), nullable=True),
        sa.Column("sent_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("uq_notify_outbox_key", "notify_outbox", ["idempotency_key"], unique=True)
    op.create_index("ix_notify_outbox_due", "notify_outbox", ["status", "next_attempt_at"])
    op.create_table(
        "notify_preference",
        sa.Column("recipient", sa.String(length=130), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("email", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("recipient", "kind"),
    )


def downgrade() -> None:
    op.drop_table("notify_preference")
    op.drop_index("ix_notify_outbox_due", table_name="notify_outbox")
    op.drop_index("uq_notify_outbox_key", table_name="notify_outbox")
    op.drop_table("notify_outbox")
