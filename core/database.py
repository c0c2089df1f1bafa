"""The SQL database behind sign-in and chat history: SQLite by default, PostgreSQL when configured."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from core.errors import StoreUnavailable
from core.privacy import database_paths, keep_private

T = TypeVar("T")


def json_object(raw: Any) -> dict[str, Any]:
    """A JSON column's value as a dict: PostgreSQL's JSONB gives a dict, SQLite's TEXT gives JSON text, and a
    value written with its JSON encoded twice (a JSON string holding JSON) is decoded as often as it was
    encoded. Anything else is an empty dict."""
    for _ in range(4):
        if not isinstance(raw, str):
            break
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            return {}
    return raw if isinstance(raw, dict) else {}


def _schema(postgres: bool) -> list[str]:
    """Chainlit 2.12's SQLAlchemy data layer tables (with every column it writes), plus our users."""
    uuid, json, tags = ("UUID", "JSONB", "TEXT[]") if postgres else ("TEXT", "TEXT", "TEXT")
    return [
        f"""CREATE TABLE IF NOT EXISTS users (
            "id" {uuid} PRIMARY KEY, "identifier" TEXT NOT NULL UNIQUE, "metadata" {json} NOT NULL,
            "createdAt" TEXT)""",
        f"""CREATE TABLE IF NOT EXISTS threads (
            "id" {uuid} PRIMARY KEY, "createdAt" TEXT, "name" TEXT, "userId" {uuid}, "userIdentifier" TEXT,
            "tags" {tags}, "metadata" {json},
            FOREIGN KEY ("userId") REFERENCES users("id") ON DELETE CASCADE)""",
        f"""CREATE TABLE IF NOT EXISTS steps (
            "id" {uuid} PRIMARY KEY, "name" TEXT NOT NULL, "type" TEXT NOT NULL, "threadId" {uuid} NOT NULL,
            "parentId" {uuid}, "streaming" BOOLEAN NOT NULL, "waitForAnswer" BOOLEAN, "isError" BOOLEAN,
            "metadata" {json}, "tags" {tags}, "input" TEXT, "output" TEXT, "createdAt" TEXT, "command" TEXT,
            "start" TEXT, "end" TEXT, "generation" {json}, "showInput" TEXT, "language" TEXT, "indent" INT,
            "defaultOpen" BOOLEAN, "autoCollapse" BOOLEAN, "modes" {json},
            FOREIGN KEY ("threadId") REFERENCES threads("id") ON DELETE CASCADE)""",
        f"""CREATE TABLE IF NOT EXISTS elements (
            "id" {uuid} PRIMARY KEY, "threadId" {uuid}, "type" TEXT, "url" TEXT, "chainlitKey" TEXT,
            "name" TEXT NOT NULL, "display" TEXT, "objectKey" TEXT, "size" TEXT, "page" INT, "language" TEXT,
            "forId" {uuid}, "mime" TEXT, "props" {json}, "autoPlay" BOOLEAN, "playerConfig" {json},
            FOREIGN KEY ("threadId") REFERENCES threads("id") ON DELETE CASCADE)""",
        f"""CREATE TABLE IF NOT EXISTS feedbacks (
            "id" {uuid} PRIMARY KEY, "forId" {uuid} NOT NULL, "threadId" {uuid} NOT NULL, "value" INT NOT NULL,
            "comment" TEXT,
            FOREIGN KEY ("threadId") REFERENCES threads("id") ON DELETE CASCADE)""",
        """CREATE TABLE IF NOT EXISTS kb_users (
            "identifier" TEXT PRIMARY KEY, "password_hash" TEXT, "role" TEXT NOT NULL, "created_at" TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS kb_documents (
            "store" TEXT NOT NULL, "doc_key" TEXT NOT NULL, "source" TEXT NOT NULL, "scope" TEXT NOT NULL,
            "owner" TEXT NOT NULL, "doc_hash" TEXT NOT NULL, "version" TEXT NOT NULL, "state" TEXT NOT NULL,
            "chunks" INT NOT NULL, "reason" TEXT NOT NULL, "updated_at" TEXT NOT NULL,
            "writer" TEXT NOT NULL DEFAULT '',
            PRIMARY KEY ("store", "doc_key"))""",
        'CREATE INDEX IF NOT EXISTS steps_thread ON steps ("threadId")',
        'CREATE INDEX IF NOT EXISTS threads_user ON threads ("userIdentifier")',
    ]


def describe(url: str) -> str:
    """The URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(url: str) -> AsyncEngine:
    """An async engine; a SQLite file's folder is created on the way."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return create_async_engine(url, pool_pre_ping=True)


async def create_schema(engine: AsyncEngine) -> None:
    """Create the tables if they are missing (idempotent, safe for several processes)."""
    postgres = engine.dialect.name == "postgresql"
    async with engine.begin() as conn:
        if postgres:  # two replicas starting together must not race on CREATE TABLE
            await conn.execute(text("SELECT pg_advisory_xact_lock(727274)"))
        else:  # readers never wait for the writer (the file keeps this mode)
            await conn.execute(text("PRAGMA journal_mode=WAL"))
        for statement in _schema(postgres):
            await conn.execute(text(statement))
        for table, column, kind in ADDED_COLUMNS:
            await _add_column(conn, postgres, table, column, kind)


# Columns added after a table was first released: databases made before get them at start-up.
ADDED_COLUMNS = [("kb_documents", "writer", "TEXT NOT NULL DEFAULT ''")]


async def _add_column(conn: AsyncConnection, postgres: bool, table: str, column: str, kind: str) -> None:
    if postgres:
        query = (
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = :table AND table_schema = current_schema()"
        )
        names = {row[0] for row in await conn.execute(text(query), {"table": table})}
    else:
        names = {row[1] for row in await conn.execute(text(f"PRAGMA table_info({table})"))}
    if column not in names:
        try:
            await conn.execute(text(f'ALTER TABLE {table} ADD COLUMN "{column}" {kind}'))
        except OperationalError as exc:  # SQLite: another process added it between our look and our change
            if "duplicate column" not in str(exc):
                raise


@asynccontextmanager
async def open_database(url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a database whose schema exists; a plain error when it cannot be reached."""
    keep_private(database_paths(url))
    engine = make_engine(url)
    try:
        try:
            await create_schema(engine)
        except (SQLAlchemyError, OSError) as exc:
            reason = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
            raise StoreUnavailable(f"Could not open the database {describe(url)}: {reason}") from exc
        yield engine
    finally:
        await engine.dispose()


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from synchronous code, even inside a running event loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(_await(make))).result()


async def _await(make: Callable[[], Awaitable[T]]) -> T:
    return await make()
