"""People who may sign in: identifiers, argon2 password hashes and roles, in the app's SQL database."""

from __future__ import annotations

import asyncio
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.access import ROLES, Role, Viewer
from core.database import open_database
from core.errors import KnowledgeBaseError

MIN_PASSWORD = 8
_hasher = PasswordHasher()
_DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$0hWYy6XWZ1c3h5a3fYdWpIHz2PK/4ZbuH1h6yvYJz/0"
SELECT = 'SELECT "identifier", "role", "created_at", "password_hash" FROM kb_users'


class UserError(KnowledgeBaseError):
    """A user could not be added, changed or found."""


@dataclass(frozen=True)
class UserRecord:
    """A user as stored (never with the password)."""

    identifier: str
    role: Role
    created_at: str
    has_password: bool

    @property
    def viewer(self) -> Viewer:
        return Viewer(self.identifier, self.role)


def normalize_identifier(identifier: str) -> str:
    """A user name or e-mail as stored: NFC, trimmed, lower-case; plain characters only."""
    value = unicodedata.normalize("NFC", identifier).strip().lower()
    if not value or len(value) > 128 or any(unicodedata.category(ch)[0] in "CZ" and ch != " " for ch in value):
        raise UserError("a user name must be 1-128 printable characters")
    if " " in value:
        raise UserError("a user name cannot contain spaces")
    return value


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"a password needs at least {MIN_PASSWORD} characters")


class UserStore:
    """Add, remove, reset and verify users."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # Each check costs ~50 ms of CPU by design: a flood of sign-ins must not take every core.
        self._hash_slots = asyncio.Semaphore(2)

    async def _fetch(self, ident: str) -> tuple[str, Role, str, str | None] | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(text(f'{SELECT} WHERE "identifier" = :i'), {"i": ident})).first()
        return (row[0], row[1], row[2], row[3]) if row else None

    async def count(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(text("SELECT COUNT(*) FROM kb_users"))).scalar_one())

    async def list_users(self) -> list[UserRecord]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(text(f'{SELECT} ORDER BY "identifier"'))
            return [UserRecord(r[0], r[1], r[2], bool(r[3])) for r in rows]

    async def get(self, identifier: str) -> UserRecord | None:
        try:
            ident = normalize_identifier(identifier)
        except UserError:
            return None
        row = await self._fetch(ident)
        return UserRecord(row[0], row[1], row[2], bool(row[3])) if row else None

    async def add(self, identifier: str, password: str | None, role: Role = "member") -> UserRecord:
        """A new user; without a password they can sign in only through OAuth or the SSO header."""
        ident = normalize_identifier(identifier)
        if role not in ROLES:
            raise UserError(f"a role is one of {', '.join(ROLES)}")
        if password is not None:
            check_password(password)
        if await self.get(ident):
            raise UserError(f"user '{ident}' already exists")
        hashed = await asyncio.to_thread(_hasher.hash, password) if password is not None else None
        now = datetime.now(UTC).isoformat(timespec="seconds")
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    'INSERT INTO kb_users ("identifier", "password_hash", "role", "created_at") VALUES (:i, :h, :r, :c)'
                ),
                {"i": ident, "h": hashed, "r": role, "c": now},
            )
        return UserRecord(ident, role, now, hashed is not None)

    async def remove(self, identifier: str) -> None:
        ident = normalize_identifier(identifier)
        async with self.engine.begin() as conn:
            res = await conn.execute(text('DELETE FROM kb_users WHERE "identifier" = :i'), {"i": ident})
        if not res.rowcount:
            raise UserError(f"no user '{ident}'")

    async def reset(self, identifier: str, password: str) -> None:
        """Set a new password."""
        ident = normalize_identifier(identifier)
        check_password(password)
        hashed = await asyncio.to_thread(_hasher.hash, password)
        async with self.engine.begin() as conn:
            res = await conn.execute(
                text('UPDATE kb_users SET "password_hash" = :h WHERE "identifier" = :i'), {"h": hashed, "i": ident}
            )
        if not res.rowcount:
            raise UserError(f"no user '{ident}'")

    async def set_role(self, identifier: str, role: Role) -> None:
        ident = normalize_identifier(identifier)
        if role not in ROLES:
            raise UserError(f"a role is one of {', '.join(ROLES)}")
        async with self.engine.begin() as conn:
            res = await conn.execute(
                text('UPDATE kb_users SET "role" = :r WHERE "identifier" = :i'), {"r": role, "i": ident}
            )
        if not res.rowcount:
            raise UserError(f"no user '{ident}'")

    async def verify(self, identifier: str, password: str) -> UserRecord | None:
        """The user when the password is right; None otherwise (core.throttle slows repeated guessing)."""
        try:
            ident = normalize_identifier(identifier)
        except UserError:
            return None
        row = await self._fetch(ident)
        stored = row[3] if row and row[3] else _DUMMY_HASH  # same work whether or not the user exists
        try:
            async with self._hash_slots:
                verified = await asyncio.to_thread(_hasher.verify, stored, password)
            ok = verified and row is not None and bool(row[3])
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or row is None:
            return None
        return UserRecord(row[0], row[1], row[2], True)


async def registered_viewer(database_url: str, identifier: str) -> Viewer:
    """The registered user `identifier` with their role (for the command lines' --as USER)."""
    async with open_database(database_url) as engine:
        record = await UserStore(engine).get(identifier)
    if record is None:
        raise UserError(f"no user '{identifier}' (see: python -m core users list)")
    return record.viewer
