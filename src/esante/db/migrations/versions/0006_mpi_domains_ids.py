"""mpi: identifier domains and the ledger of assigned eSanté patient identifiers (see docs/mpi.md)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 04:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mpi_domain",
        sa.Column("system", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("organization", sa.String(length=255), nullable=True),
        sa.Column("source_client_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("system"),
    )
    op.create_table(
        "mpi_esante_id",
        sa.Column("esante_id", sa.CHAR(length=10), nullable=False),
        sa.Column("res_id", sa.String(length=64), nullable=False),
        sa.Column("assigned_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("esante_id"),
    )
    op.create_index("ix_mpi_esante_id_res", "mpi_esante_id", ["res_id"])


def downgrade() -> None:
    op.drop_index("ix_mpi_esante_id_res", table_name="mpi_esante_id")
    op.drop_table("mpi_esante_id")
    op.drop_table("mpi_domain")
