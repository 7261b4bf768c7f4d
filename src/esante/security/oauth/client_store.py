"""The ``oauth_client`` table: register, read, list, suspend and reactivate clients.

Suspending a client refuses its new requests at once (an inactive client is unknown to the token and authorize
endpoints), makes every token it holds inactive (``tokens_valid_after`` moves past them: introspection and the
resource server compare it with the token's ``iat``) and revokes its refresh tokens. Reactivation does not bring
those tokens back: the client asks for new ones.
"""

from __future__ import annotations

import json
from typing import Any

from esante.db.engine import Database, IntegrityViolation, Row
from esante.security.oauth.clients import ClientError, ClientKind, ClientStatus, OAuthClient

_COLUMNS = (
    "client_id, name, kind, status, public, auth_method, jwks, redirect_uris, grant_types, scopes, organization, "
    "tokens_valid_after, created_at, updated_at"
)


def _from_row(row: Row) -> OAuthClient:
    (
        client_id,
        name,
        kind,
        status,
        public,
        auth_method,
        jwks,
        redirect_uris,
        grants,
        scopes,
        org,
        tva,
        created,
        upd,
    ) = row
    return OAuthClient(
        client_id=str(client_id),
        name=str(name),
        kind=ClientKind(kind),
        status=ClientStatus(status),
        public=bool(public),
        auth_method=str(auth_method),
        jwks=json.loads(jwks) if jwks else None,
        redirect_uris=tuple(json.loads(redirect_uris)) if redirect_uris else (),
        grant_types=tuple(str(grants).split()),
        scopes=str(scopes),
        organization=org,
        tokens_valid_after=int(tva),
        created_at=int(created),
        updated_at=int(upd),
    )


def _to_row(client: OAuthClient) -> tuple[Any, ...]:
    return (
        client.client_id,
        client.name,
        client.kind.value,
        client.status.value,
        client.public,
        client.auth_method,
        json.dumps(client.jwks, separators=(",", ":")) if client.jwks is not None else None,
        json.dumps(list(client.redirect_uris)),
        " ".join(client.grant_types),
        client.scopes,
        client.organization,
        client.tokens_valid_after,
        client.created_at,
        client.updated_at,
    )


class ClientStore:
    """SQL for the client registry (both engines)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def register(self, client: OAuthClient) -> OAuthClient:
        """Insert a validated client; :class:`ClientError` if the id is taken."""
        placeholders = ", ".join("?" * len(_COLUMNS.split(",")))
        try:
            async with self.database.transaction() as conn:
                inserted = await conn.execute(
                    f"INSERT INTO oauth_client ({_COLUMNS}) VALUES ({placeholders}) ON CONFLICT (client_id) DO NOTHING",
                    _to_row(client),
                )
        except IntegrityViolation as error:  # pragma: no cover - ON CONFLICT already covers the race
            raise ClientError(f"client {client.client_id!r} is already registered") from error
        if not inserted:
            raise ClientError(f"client {client.client_id!r} is already registered")
        return client

    async def get(self, client_id: str) -> OAuthClient | None:
        async with self.database.read() as conn:
            row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM oauth_client WHERE client_id = ?", (client_id,))
        return _from_row(row) if row is not None else None

    async def list(self) -> list[OAuthClient]:
        async with self.database.read() as conn:
            rows = await conn.fetch(f"SELECT {_COLUMNS} FROM oauth_client ORDER BY client_id")
        return [_from_row(row) for row in rows]

    async def suspend(self, client_id: str, now: int) -> OAuthClient:
        """Suspend: tokens issued up to now become inactive, refresh tokens are revoked. Idempotent."""
        async with self.database.transaction() as conn:
            changed = await conn.execute(
                "UPDATE oauth_client SET status = ?, tokens_valid_after = ?, updated_at = ? WHERE client_id = ?",
                (ClientStatus.SUSPENDED.value, now + 1, now, client_id),
            )
            if not changed:
                raise ClientError(f"no client {client_id!r}")
            await conn.execute(
                "UPDATE oauth_refresh_token SET revoked = ? WHERE client_id = ? AND revoked = ?",
                (True, client_id, False),
            )
        client = await self.get(client_id)
        assert client is not None
        return client

    async def reactivate(self, client_id: str, now: int) -> OAuthClient:
        """Active again; tokens from before the suspension stay inactive."""
        async with self.database.transaction() as conn:
            changed = await conn.execute(
                "UPDATE oauth_client SET status = ?, updated_at = ? WHERE client_id = ?",
                (ClientStatus.ACTIVE.value, now, client_id),
            )
        if not changed:
            raise ClientError(f"no client {client_id!r}")
        client = await self.get(client_id)
        assert client is not None
        return client
