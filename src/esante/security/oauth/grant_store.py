"""What the authorization server remembers between requests: authorization codes, refresh token families, revoked
access tokens and the ``jti`` of client assertions already used.

Secrets are never stored: codes and refresh tokens are kept as their SHA-256 (``hash_secret``), assertion ``jti``
as SHA-256(client_id, jti). Every check-and-use is one transaction (the code or refresh token row is locked on
PostgreSQL; SQLite write transactions are serial), so two concurrent uses of one code or refresh token cannot both
succeed: the loser is treated as a replay.

- A code is single use. A code presented again (RFC 6749 §4.1.2) revokes what was issued from it: its access token
  and the refresh token family it started (the family id *is* the code's hash).
- A refresh token is single use too (rotation): each use issues a new one of the same family and marks the old one
  used. Presenting a used one revokes the whole family and the access tokens issued with it (reuse detection).
- Revoked access tokens are listed by ``jti`` until they expire; rows past expiry are purged.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from enum import StrEnum

from esante.db.engine import Connection, Database

USED_CODE_KEPT = 86400  # used codes are kept a day after expiry, so a late replay still revokes its tokens
_PURGE_EVERY = 60.0


def hash_secret(value: str) -> str:
    """The stored form of a code or refresh token (never the value itself)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def assertion_key(client_id: str, jti: str) -> str:
    return hashlib.sha256(f"{client_id}\x00{jti}".encode()).hexdigest()


@dataclass(frozen=True)
class CodeRecord:
    """An authorization code being exchanged (already marked used)."""

    code_hash: str
    client_id: str
    account_id: str
    redirect_uri: str
    scope: str
    person_id: str | None
    subject_role: str
    code_challenge: str
    purpose_of_use: str | None
    created_at: int

    # authlib's AuthorizationCodeMixin
    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass(frozen=True)
class RefreshRecord:
    token_hash: str
    family: str
    client_id: str
    account_id: str
    scope: str
    person_id: str | None
    subject_role: str
    purpose_of_use: str | None
    expires_at: int
    used_at: int | None
    revoked: bool
    created_at: int

    # authlib's TokenMixin
    def check_client(self, client: object) -> bool:
        return getattr(client, "client_id", None) == self.client_id

    def get_scope(self) -> str:
        return self.scope


class CodeOutcome(StrEnum):
    OK = "ok"
    UNKNOWN = "unknown"  # never issued, or purged
    EXPIRED = "expired"
    WRONG_CLIENT = "wrong_client"
    REUSED = "reused"  # used before: what it gave was revoked


_CODE_COLUMNS = (
    "code_hash, client_id, account_id, redirect_uri, scope, person_id, subject_role, code_challenge, "
    "purpose_of_use, created_at"
)
_REFRESH_COLUMNS = (
    "token_hash, family, client_id, account_id, scope, person_id, subject_role, purpose_of_use, expires_at, "
    "used_at, revoked, created_at"
)


def _refresh(row: tuple[object, ...]) -> RefreshRecord:
    th, fam, client, account, scope, person, role, purpose, exp, used, revoked, created = row
    return RefreshRecord(
        str(th),
        str(fam),
        str(client),
        str(account),
        str(scope),
        None if person is None else str(person),
        str(role),
        None if purpose is None else str(purpose),
        int(exp),  # type: ignore[call-overload]
        None if used is None else int(used),  # type: ignore[call-overload]
        bool(revoked),
        int(created),  # type: ignore[call-overload]
    )


class GrantStore:
    """SQL for codes, refresh tokens, revocations and assertion replay protection (both engines)."""

    def __init__(self, database: Database, access_token_max_ttl: int) -> None:
        self.database = database
        self.access_token_max_ttl = access_token_max_ttl  # how long a revocation entry must outlive its token
        self._purged_at = 0.0

    @staticmethod
    def _lock(conn: Connection) -> str:
        return " FOR UPDATE" if conn.dialect.is_postgres else ""

    # --- authorization codes -------------------------------------------------------------------------------------

    async def save_code(
        self,
        code: str,
        *,
        client_id: str,
        account_id: str,
        redirect_uri: str,
        scope: str,
        person_id: str | None,
        subject_role: str,
        code_challenge: str,
        purpose_of_use: str | None,
        now: int,
        ttl: int,
    ) -> str:
        code_hash = hash_secret(code)
        async with self.database.transaction() as conn:
            await conn.execute(
                "INSERT INTO oauth_code (code_hash, client_id, account_id, redirect_uri, scope, person_id, "
                "subject_role, code_challenge, purpose_of_use, expires_at, used, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    code_hash,
                    client_id,
                    account_id,
                    redirect_uri,
                    scope,
                    person_id,
                    subject_role,
                    code_challenge,
                    purpose_of_use,
                    now + ttl,
                    False,
                    now,
                ),
            )
        return code_hash

    async def consume_code(self, code: str, client_id: str, now: int) -> tuple[CodeOutcome, CodeRecord | None]:
        """Mark the code used and return it; a code used before revokes the tokens issued from it."""
        code_hash = hash_secret(code)
        async with self.database.transaction() as conn:
            row = await conn.fetchrow(
                f"SELECT {_CODE_COLUMNS}, expires_at, used FROM oauth_code WHERE code_hash = ?{self._lock(conn)}",
                (code_hash,),
            )
            if row is None:
                return CodeOutcome.UNKNOWN, None
            record = CodeRecord(
                str(row[0]),
                str(row[1]),
                str(row[2]),
                str(row[3]),
                str(row[4]),
                None if row[5] is None else str(row[5]),
                str(row[6]),
                str(row[7]),
                None if row[8] is None else str(row[8]),
                int(row[9]),
            )
            expires_at, used = int(row[10]), bool(row[11])
            if used:
                await self._revoke_family(conn, code_hash, now)
                return CodeOutcome.REUSED, None
            await conn.execute("UPDATE oauth_code SET used = ? WHERE code_hash = ?", (True, code_hash))
            if record.client_id != client_id:  # presented by another client: burnt (it may have been stolen)
                return CodeOutcome.WRONG_CLIENT, None
            if now >= expires_at:
                return CodeOutcome.EXPIRED, None
        return CodeOutcome.OK, record

    async def attach_code_token(self, code_hash: str, access_jti: str) -> None:
        async with self.database.transaction() as conn:
            await conn.execute("UPDATE oauth_code SET access_jti = ? WHERE code_hash = ?", (access_jti, code_hash))

    # --- refresh tokens --------------------------------------------------------------------------------------------

    async def save_refresh(
        self,
        token: str,
        *,
        family: str,
        client_id: str,
        account_id: str,
        scope: str,
        person_id: str | None,
        subject_role: str,
        purpose_of_use: str | None,
        access_jti: str,
        expires_at: int,
        now: int,
    ) -> None:
        async with self.database.transaction() as conn:
            await conn.execute(
                f"INSERT INTO oauth_refresh_token ({_REFRESH_COLUMNS}, access_jti) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    hash_secret(token),
                    family,
                    client_id,
                    account_id,
                    scope,
                    person_id,
                    subject_role,
                    purpose_of_use,
                    expires_at,
                    None,
                    False,
                    now,
                    access_jti,
                ),
            )

    async def find_refresh(self, token: str) -> RefreshRecord | None:
        async with self.database.read() as conn:
            row = await conn.fetchrow(
                f"SELECT {_REFRESH_COLUMNS} FROM oauth_refresh_token WHERE token_hash = ?", (hash_secret(token),)
            )
        return _refresh(row) if row is not None else None

    async def use_refresh(self, record: RefreshRecord, now: int) -> bool:
        """Mark the refresh token used; False (and the family revoked) if it was used or revoked meanwhile."""
        async with self.database.transaction() as conn:
            changed = await conn.execute(
                "UPDATE oauth_refresh_token SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND revoked = ?",
                (now, record.token_hash, False),
            )
            if not changed:
                await self._revoke_family(conn, record.family, now)
                return False
        return True

    async def revoke_family(self, family: str, now: int) -> None:
        async with self.database.transaction() as conn:
            await self._revoke_family(conn, family, now)

    async def _revoke_family(self, conn: Connection, family: str, now: int) -> None:
        """Every refresh token of the family revoked; the access tokens issued with them (and with the code that
        started the family) listed as revoked."""
        await conn.execute("UPDATE oauth_refresh_token SET revoked = ? WHERE family = ?", (True, family))
        rows = await conn.fetch(
            "SELECT access_jti FROM oauth_refresh_token WHERE family = ? AND access_jti IS NOT NULL "
            "UNION SELECT access_jti FROM oauth_code WHERE code_hash = ? AND access_jti IS NOT NULL",
            (family, family),
        )
        for (jti,) in rows:
            await self._revoke_access(conn, str(jti), now + self.access_token_max_ttl)

    # --- access tokens -----------------------------------------------------------------------------------------------

    async def revoke_access(self, jti: str, expires_at: int) -> None:
        async with self.database.transaction() as conn:
            await self._revoke_access(conn, jti, expires_at)

    @staticmethod
    async def _revoke_access(conn: Connection, jti: str, expires_at: int) -> None:
        await conn.execute(
            "INSERT INTO oauth_revoked_token (jti, expires_at) VALUES (?, ?) ON CONFLICT (jti) DO NOTHING",
            (jti, expires_at),
        )

    async def is_revoked(self, jti: str) -> bool:
        async with self.database.read() as conn:
            return await conn.fetchval("SELECT 1 FROM oauth_revoked_token WHERE jti = ?", (jti,)) is not None

    # --- client assertions -------------------------------------------------------------------------------------------

    async def use_assertion(self, client_id: str, jti: str, expires_at: int, now: int) -> bool:
        """Record a client assertion's jti; False when it was seen before (a replay)."""
        await self.purge(now)
        async with self.database.transaction() as conn:
            inserted = await conn.execute(
                "INSERT INTO oauth_assertion_jti (jti_key, expires_at) VALUES (?, ?) ON CONFLICT (jti_key) DO NOTHING",
                (assertion_key(client_id, jti), expires_at),
            )
        return bool(inserted)

    async def purge(self, now: int, force: bool = False) -> None:
        """Forget what can no longer matter (at most once a minute per process unless forced)."""
        if not force and time.monotonic() - self._purged_at < _PURGE_EVERY:
            return
        self._purged_at = time.monotonic()
        async with self.database.transaction() as conn:
            await conn.execute("DELETE FROM oauth_assertion_jti WHERE expires_at < ?", (now,))
            await conn.execute("DELETE FROM oauth_revoked_token WHERE expires_at < ?", (now,))
            await conn.execute("DELETE FROM oauth_code WHERE expires_at < ?", (now - USED_CODE_KEPT,))
            await conn.execute(
                "DELETE FROM oauth_refresh_token WHERE expires_at < ? AND family NOT IN "
                "(SELECT family FROM oauth_refresh_token WHERE expires_at >= ?)",
                (now, now),
            )
