"""Access tokens for tests: a registered system client with every permission, and tokens for any principal.

The core FHIR tests act as establishment software with ``system/*.cruds`` (all rights), through the real bearer
gate and policy; the security tests mint narrower tokens.
"""

from __future__ import annotations

import time

from esante.config import Settings
from esante.db.engine import Database
from esante.security.keys import KeyRing
from esante.security.tokens import mint_for, principal

TEST_CLIENT = "test-system"
ALL_RIGHTS = "system/*.cruds"


async def register_client(
    database: Database,
    client_id: str = TEST_CLIENT,
    scopes: str = ALL_RIGHTS,
    *,
    kind: str = "hospital",
    status: str = "active",
) -> None:
    """Insert a registered system client row (the authorization server's registry) for ``client_id``."""
    now = int(time.time())
    async with database.transaction() as conn:
        await conn.execute("DELETE FROM oauth_client WHERE client_id = ?", (client_id,))
        await conn.execute(
            "INSERT INTO oauth_client (client_id, name, kind, status, public, auth_method, jwks, redirect_uris,"
            " grant_types, scopes, organization, tokens_valid_after, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                client_id,
                f"test client {client_id}",
                kind,
                status,
                False,
                "private_key_jwt",
                '{"keys": []}',
                "[]",
                "client_credentials",
                scopes,
                None,
                0,
                now,
                now,
            ),
        )


def token(settings: Settings, who: str, scope: str | None = None, **options: object) -> str:
    """A token for ``who`` (``patient:<id>``, ``system:<client>``, ...) signed with the settings' key ring."""
    ring = KeyRing.load_or_create(settings)
    return mint_for(settings, ring, principal(who), scope=scope, **options)  # type: ignore[arg-type]


def bearer(settings: Settings, who: str = f"system:{TEST_CLIENT}", scope: str | None = None) -> dict[str, str]:
    """An Authorization header; a system principal defaults to every permission."""
    if scope is None and who.startswith("system:"):
        scope = ALL_RIGHTS
    return {"Authorization": f"Bearer {token(settings, who, scope)}"}
