"""security: accounts, delegations, OAuth clients, codes, refresh tokens, revocations (see docs/security.md)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 01:43:04.076470
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "account",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=True),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("practitioner_id", sa.String(length=64), nullable=True),
        sa.Column("ehealth_id", sa.String(length=16), nullable=True),
        sa.Column("roles", sa.String(length=255), server_default="", nullable=False),
        sa.Column("matricule", sa.String(length=16), nullable=True),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("mobile", sa.String(length=32), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("totp_secret", sa.String(length=64), nullable=True),
        sa.Column("totp_enabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("totp_last_counter", sa.BigInteger(), nullable=True),
        sa.Column("activation_code_hash", sa.CHAR(length=64), nullable=True),
        sa.Column("activation_expires", sa.BigInteger(), nullable=True),
        sa.Column("reset_code_hash", sa.CHAR(length=64), nullable=True),
        sa.Column("reset_expires", sa.BigInteger(), nullable=True),
        sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", sa.BigInteger(), nullable=True),
        sa.Column("tokens_valid_after", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.create_index("ix_account_ehealth_id", ["ehealth_id"], unique=False)
        batch_op.create_index("ix_account_patient", ["patient_id"], unique=False)
        batch_op.create_index("uq_account_username", ["username"], unique=True)

    op.create_table(
        "account_delegation",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("account_delegation", schema=None) as batch_op:
        batch_op.create_index("ix_account_delegation_account", ["account_id", "patient_id"], unique=False)
        batch_op.create_index("ix_account_delegation_patient", ["patient_id"], unique=False)

    op.create_table(
        "oauth_assertion_jti",
        sa.Column("jti_key", sa.CHAR(length=64), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("jti_key"),
    )
    op.create_table(
        "oauth_client",
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("public", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("auth_method", sa.String(length=32), nullable=False),
        sa.Column("jwks", sa.Text(), nullable=True),
        sa.Column("redirect_uris", sa.Text(), server_default="", nullable=False),
        sa.Column("grant_types", sa.Text(), server_default="", nullable=False),
        sa.Column("scopes", sa.Text(), server_default="", nullable=False),
        sa.Column("organization", sa.String(length=255), nullable=True),
        sa.Column("tokens_valid_after", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("client_id"),
    )
    op.create_table(
        "oauth_code",
        sa.Column("code_hash", sa.CHAR(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=True),
        sa.Column("subject_role", sa.String(length=16), nullable=False),
        sa.Column("code_challenge", sa.String(length=128), nullable=False),
        sa.Column("nonce", sa.String(length=255), nullable=True),
        sa.Column("purpose_of_use", sa.String(length=16), nullable=True),
        sa.Column("access_jti", sa.String(length=64), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("code_hash"),
    )
    op.create_table(
        "oauth_refresh_token",
        sa.Column("token_hash", sa.CHAR(length=64), nullable=False),
        sa.Column("family", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=True),
        sa.Column("subject_role", sa.String(length=16), nullable=False),
        sa.Column("purpose_of_use", sa.String(length=16), nullable=True),
        sa.Column("access_jti", sa.String(length=64), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.Column("revoked", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    with op.batch_alter_table("oauth_refresh_token", schema=None) as batch_op:
        batch_op.create_index("ix_oauth_refresh_token_account", ["account_id"], unique=False)
        batch_op.create_index("ix_oauth_refresh_token_family", ["family"], unique=False)

    op.create_table(
        "oauth_revoked_token",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("jti"),
    )


def downgrade() -> None:

    op.drop_table("oauth_revoked_token")
    with op.batch_alter_table("oauth_refresh_token", schema=None) as batch_op:
        batch_op.drop_index("ix_oauth_refresh_token_family")
        batch_op.drop_index("ix_oauth_refresh_token_account")

    op.drop_table("oauth_refresh_token")
    op.drop_table("oauth_code")
    op.drop_table("oauth_client")
    op.drop_table("oauth_assertion_jti")
    with op.batch_alter_table("account_delegation", schema=None) as batch_op:
        batch_op.drop_index("ix_account_delegation_patient")
        batch_op.drop_index("ix_account_delegation_account")

    op.drop_table("account_delegation")
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_index("uq_account_username")
        batch_op.drop_index("ix_account_patient")
        batch_op.drop_index("ix_account_ehealth_id")

    op.drop_table("account")
