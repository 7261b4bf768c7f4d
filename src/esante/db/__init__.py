"""Database access: one small async adapter over asyncpg (PostgreSQL) and sqlite3 (embedded)."""
