"""Access tokens for tests: a registered system client with every permission, and tokens for any principal.

The core FHIR tests act as establishment software with ``system/*.cruds`` (all rights), through the real bearer
gate and policy; the security tests mint narrower tokens.
"""

from __future__ import annotations

import time

from esante.config import Settings
from esante.db.engine import Database
from esante.demo import register_system_client
from esante.security.keys import KeyRing
from esante.security.oauth.client_store import ClientStore
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
    """Register (or register again) establishment software ``client_id`` through the client registry."""
    async with database.transaction() as conn:  # a test may register the same id again with other scopes
        await conn.execute("DELETE FROM oauth_client WHERE client_id = ?", (client_id,))
    await register_system_client(database, client_id, f"test client {client_id}", scopes, kind=kind)
    if status == "suspended":
        await ClientStore(database).suspend(client_id, int(time.time()))


def token(settings: Settings, who: str, scope: str | None = None, **options: object) -> str:
    """A token for ``who`` (``patient:<id>``, ``system:<client>``, ...) signed with the settings' key ring."""
    ring = KeyRing.load_or_create(settings)
    return mint_for(settings, ring, principal(who), scope=scope, **options)  # type: ignore[arg-type]


def bearer(settings: Settings, who: str = f"system:{TEST_CLIENT}", scope: str | None = None) -> dict[str, str]:
    """An Authorization header; a system principal defaults to every permission."""
    if scope is None and who.startswith("system:"):
        scope = ALL_RIGHTS
    return {"Authorization": f"Bearer {token(settings, who, scope)}"}
