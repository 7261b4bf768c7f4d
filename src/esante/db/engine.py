"""A thin async database adapter: asyncpg for PostgreSQL, stdlib sqlite3 for the embedded default.

Why not SQLAlchemy's async engine at run time: the hot read path is one indexed SELECT returning stored JSON
bytes, and asyncpg used directly costs a fraction of the per-query overhead (measured in bench/). SQLAlchemy Core
still defines the schema (db/schema.py) and drives Alembic migrations.

SQL is written once with ``?`` placeholders and translated to ``$n`` for asyncpg (cached). Statements use only
SQL understood by both engines; the :class:`Dialect` carries the few differences.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Dialect:
    """What differs between the engines, in one place."""

    name: str  # "postgresql" | "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.name == "postgresql"

    def like_escape(self, text: str) -> str:
        """Escape LIKE wildcards in user text (we always pass ESCAPE '\\')."""
        return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Connection(Protocol):
    """One connection inside a transaction (or a read snapshot)."""

    dialect: Dialect
    custom_plans: bool  # PostgreSQL: statements are planned with their values on every execution
    in_transaction: bool  # False for ``read()``'s autocommitted connections

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    async def fetchrow(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    async def fetchval(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    async def copy_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Bulk insert: PostgreSQL ``COPY … FROM STDIN`` (binary), SQLite an ``executemany`` of an INSERT."""
        ...


class IntegrityViolation(Exception):
    """A unique-constraint violation: a concurrent writer won the race."""


class SerializationFailure(Exception):
    """The database aborted the transaction because of a concurrent update."""


@lru_cache(maxsize=4096)
def to_dollar_params(sql: str) -> str:
    """Rewrite ``?`` placeholders into asyncpg's ``$1, $2, ...`` (our SQL never holds a literal ``?``)."""
    counter = iter(range(1, 1_000_000))
    return re.sub(r"\?", lambda _m: f"${next(counter)}", sql)


class Database:
    """Abstract database: a write transaction, a read connection and lifecycle."""

    dialect: Dialect
    url: str

    async def connect(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def transaction(self) -> Any:
        """``async with db.transaction() as conn``: all-or-nothing write unit."""
        raise NotImplementedError

    def read(self, search: bool = False) -> Any:
        """``async with db.read() as conn``: a read; ``search=True`` for search statements (see PostgreSQL)."""
        raise NotImplementedError


class _PgConnection:
    def __init__(self, raw: Any, dialect: Dialect, custom_plans: bool = False, in_transaction: bool = True) -> None:
        self._raw = raw
        self.dialect = dialect
        self.custom_plans = custom_plans
        self.in_transaction = in_transaction

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            return [tuple(r) for r in await self._raw.fetch(to_dollar_params(sql), *params)]
        except Exception as exc:
            raise _translate_pg(exc) from exc

    async def fetchrow(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        try:
            row = await self._raw.fetchrow(to_dollar_params(sql), *params)
        except Exception as exc:
            raise _translate_pg(exc) from exc
        return tuple(row) if row is not None else None

    async def fetchval(self, sql: str, params: Sequence[Any] = ()) -> Any:
        try:
            return await self._raw.fetchval(to_dollar_params(sql), *params)
        except Exception as exc:
            raise _translate_pg(exc) from exc

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            status = await self._raw.execute(to_dollar_params(sql), *params)
        except Exception as exc:
            raise _translate_pg(exc) from exc
        tail = str(status).rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        try:
            await self._raw.executemany(to_dollar_params(sql), rows)
        except Exception as exc:
            raise _translate_pg(exc) from exc

    async def copy_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        try:
            await self._raw.copy_records_to_table(table, records=rows, columns=list(columns))
        except Exception as exc:
            raise _translate_pg(exc) from exc


def _translate_pg(exc: Exception) -> Exception:
    import asyncpg

    if isinstance(exc, asyncpg.UniqueViolationError):
        return IntegrityViolation(str(exc))
    if isinstance(exc, asyncpg.SerializationError | asyncpg.DeadlockDetectedError):
        return SerializationFailure(str(exc))
    return exc


async def _keep_session_state(_connection: Any) -> None:
    """Pool release without asyncpg's reset round trip (RESET ALL, UNLISTEN, advisory unlock, ...).

    The platform never changes session state: settings come from the pool's ``server_settings``, locks are
    transaction-scoped and every transaction ends before release. Saves one round trip per request.
    """
    return None


class PostgresDatabase(Database):
    """PostgreSQL through two asyncpg pools that differ only in how statements are planned.

    Every statement is prepared once per connection and cached. PostgreSQL then plans each execution anew (a
    *custom* plan) or, after five runs, may reuse one *generic* plan that ignores the parameter values:

    * searches (``read(search=True)``) use a pool with ``plan_cache_mode = force_custom_plan``: their values
      decide the best plan (a generic plan of one DocumentReference search took 40 ms instead of 1 ms);
    * everything else (reads by id, history, writes) uses the default mode, whose cached generic plans save the
      planning time (a read by id 0.48 → 0.32 ms). A search inside a write transaction (conditional
      interactions, bundle entries) switches its transaction to custom plans with ``SET LOCAL``.
    """

    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url = url
        self.dialect = Dialect("postgresql")
        self._pool_size = pool_size
        self._pool: Any = None
        self._search_pool: Any = None

    async def connect(self) -> None:
        import asyncpg

        dsn = self.url.replace("postgresql+asyncpg://", "postgresql://").replace(
            "postgresql+psycopg://", "postgresql://"
        )
        common: dict[str, Any] = {
            "min_size": self._pool_size,  # connect at start-up, not under the first burst of requests
            "max_size": self._pool_size,
            "statement_cache_size": 512,
            "reset": _keep_session_state,
        }
        self._pool = await asyncpg.create_pool(dsn, **common)
        self._search_pool = await asyncpg.create_pool(
            dsn, server_settings={"plan_cache_mode": "force_custom_plan"}, **common
        )

    async def close(self) -> None:
        for pool in (self._pool, self._search_pool):
            if pool is not None:
                await pool.close()
        self._pool = self._search_pool = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self._pool.acquire() as raw, raw.transaction():
            yield _PgConnection(raw, self.dialect)

    @asynccontextmanager
    async def read(self, search: bool = False) -> AsyncIterator[Connection]:
        async with (self._search_pool if search else self._pool).acquire() as raw:
            yield _PgConnection(raw, self.dialect, custom_plans=search, in_transaction=False)


class _SqliteConnection:
    custom_plans = True  # SQLite plans every statement with its values
    in_transaction = True  # (not consulted: SQLite needs no per-transaction planning mode)

    def __init__(self, raw: sqlite3.Connection, dialect: Dialect) -> None:
        self._raw = raw
        self.dialect = dialect
        self.next_rid: int | None = None  # the store's key counter for this transaction (SQLite has no sequences)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._raw.execute(sql, tuple(params)).fetchall()

    async def fetchrow(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row: Row | None = self._raw.execute(sql, tuple(params)).fetchone()
        return row

    async def fetchval(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self._raw.execute(sql, tuple(params)).fetchone()
        return row[0] if row else None

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            return self._raw.execute(sql, tuple(params)).rowcount
        except sqlite3.IntegrityError as exc:
            raise IntegrityViolation(str(exc)) from exc

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        try:
            self._raw.executemany(sql, [tuple(r) for r in rows])
        except sqlite3.IntegrityError as exc:
            raise IntegrityViolation(str(exc)) from exc

    async def copy_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        marks = ", ".join("?" for _ in columns)
        await self.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


class SqliteDatabase(Database):
    """The embedded default: one sqlite3 connection in WAL mode, transactions serialised by an asyncio lock.

    Statements run on the event loop thread: on a local file they take microseconds, less than a thread hop.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = Dialect("sqlite")
        # sqlite:///relative/path, sqlite:////absolute/path, sqlite:// or sqlite:///:memory: → in memory
        rest = url.split(":", 1)[1]
        path = rest[3:] if rest.startswith("///") else ""
        self.path = path or ":memory:"
        self._raw: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        raw = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=NORMAL")
        raw.execute("PRAGMA foreign_keys=ON")
        raw.execute("PRAGMA busy_timeout=5000")
        self._raw = raw

    async def close(self) -> None:
        if self._raw is not None:
            self._raw.close()
            self._raw = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        assert self._raw is not None, "database not connected"
        async with self._lock:
            self._raw.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteConnection(self._raw, self.dialect)
            except BaseException:
                self._raw.execute("ROLLBACK")
                raise
            else:
                self._raw.execute("COMMIT")

    @asynccontextmanager
    async def read(self, search: bool = False) -> AsyncIterator[Connection]:
        assert self._raw is not None, "database not connected"
        async with self._lock:
            yield _SqliteConnection(self._raw, self.dialect)


def create_database(url: str, pool_size: int = 10) -> Database:
    """Pick the adapter from the URL scheme (``sqlite:///path`` or ``postgresql://...``)."""
    scheme = url.split(":", 1)[0]
    if scheme.startswith("sqlite"):
        return SqliteDatabase(url)
    if scheme.startswith("postgres"):
        return PostgresDatabase(url, pool_size=pool_size)
    raise ValueError(f"unsupported database URL scheme: {scheme!r}")


def sqlalchemy_url(url: str) -> str:
    """The URL Alembic's (synchronous) SQLAlchemy engine uses for the same database."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("postgresql+asyncpg://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url
