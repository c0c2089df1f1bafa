"""Users, chat history and feedback export on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chains.feedback import feedback_cases
from core.auth import plan_auth
from core.database import open_database
from core.errors import SettingsError
from core.settings import load_settings
from core.users import UserError, UserStore
from tests.servers import ROOT


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    else:
        url = request.getfixturevalue("postgres")
    async with open_database(url) as eng:
        yield eng
    if request.param == "postgresql":  # one server for the module: leave it empty for the next test
        async with open_database(url) as eng, eng.begin() as conn:
            from sqlalchemy import text

            for table in ("feedbacks", "elements", "steps", "threads", "users", "kb_users"):
                await conn.execute(text(f"DELETE FROM {table}"))


async def test_users_are_hashed_verified_and_managed(engine: AsyncEngine) -> None:
    users = UserStore(engine)
    await users.add("Alice@Example.com", "correct horse", "admin")
    await users.add("bob", "battery staple")
    assert [(u.identifier, u.role) for u in await users.list_users()] == [
        ("alice@example.com", "admin"),
        ("bob", "member"),
    ]
    async with engine.connect() as conn:
        from sqlalchemy import text

        stored = (await conn.execute(text("SELECT password_hash FROM kb_users WHERE identifier = 'bob'"))).scalar_one()
    assert stored.startswith("$argon2") and "battery" not in stored
    assert (await users.verify("ALICE@example.com ", "correct horse")) is not None
    assert await users.verify("bob", "wrong password") is None
    assert await users.verify("nobody", "whatever123") is None
    with pytest.raises(UserError):
        await users.add("bob", "another one")
    with pytest.raises(UserError):
        await users.add("carol", "short")
    await users.reset("bob", "new password 1")
    assert await users.verify("bob", "battery staple") is None
    assert (await users.verify("bob", "new password 1")) is not None
    await users.set_role("bob", "admin")
    assert (await users.get("bob")).role == "admin"  # type: ignore[union-attr]
    await users.remove("bob")
    assert await users.verify("bob", "new password 1") is None
    assert await users.count() == 1


async def test_history_feedback_and_export(engine: AsyncEngine) -> None:
    """Chainlit's own SQLAlchemy data layer writes threads, steps and feedback into our schema."""
    from chainlit.context import init_http_context
    from chainlit.data.sql_alchemy import SQLAlchemyDataLayer
    from chainlit.types import Feedback
    from chainlit.user import User

    layer = SQLAlchemyDataLayer(conninfo=engine.url.render_as_string(hide_password=False))
    try:
        user = await layer.create_user(User(identifier="alice", metadata={"role": "member"}))
        assert user is not None
        init_http_context(user=user)
        thread = str(uuid.uuid4())
        await layer.update_thread(thread, name="Travel", user_id=user.id, metadata={"chat_settings": {"k": 7}})
        ids = []
        run = str(uuid.uuid4())  # with chain-of-thought shown, the browser rates the run holding the answer
        await layer.create_step(
            {"id": run, "name": "on_message", "type": "run", "threadId": thread, "streaming": False}  # type: ignore[typeddict-item]
        )
        for n, (kind, text, meta) in enumerate(
            [
                ("user_message", "Who books travel?", {}),
                ("assistant_message", "Atlas Travel [1]", {"question": "Who books travel?", "sources": ["a.md"]}),
                ("user_message", "and hotels?", {}),
                ("assistant_message", "Unknown", {"question": "and hotels? (context: travel)", "sources": ["b.md"]}),
            ]
        ):
            step_id = str(uuid.uuid4())
            ids.append(step_id)
            await layer.create_step(
                {
                    "id": step_id,
                    "name": "x",
                    "type": kind,  # type: ignore[typeddict-item]
                    "threadId": thread,
                    "streaming": False,
                    "output": text,
                    "metadata": meta,
                    "createdAt": f"2026-11-21T08:00:0{n}Z",
                    "parentId": run if n == 3 else None,
                    "autoCollapse": False,
                    "defaultOpen": False,
                }
            )
        await layer.upsert_feedback(Feedback(forId=ids[1], threadId=thread, value=1, comment=""))
        await layer.upsert_feedback(Feedback(forId=run, threadId=thread, value=0, comment="should cite hotels.md"))
        stored = await layer.get_thread(thread)
        assert stored is not None and [s["output"] for s in stored["steps"] if s["type"] != "run"] == [
            "Who books travel?",
            "Atlas Travel [1]",
            "and hotels?",
            "Unknown",
        ]
        meta = stored["metadata"]
        assert (json.loads(meta) if isinstance(meta, str) else meta)["chat_settings"] == {"k": 7}
    finally:
        await layer.engine.dispose()

    down = await feedback_cases(engine)
    assert down == [
        {
            "question": "and hotels? (context: travel)",
            "sources": [],
            "feedback": "down",
            "comment": "should cite hotels.md",
            "cited": ["b.md"],
            "answer": "Unknown",
            "user": "alice",
            "asked_at": "2026-11-21T08:00:03Z",
        }
    ]
    both = await feedback_cases(engine, include_positive=True)
    assert [(c["feedback"], c["sources"]) for c in both] == [("up", ["a.md"]), ("down", [])]


def test_sign_in_is_off_without_users_and_needs_a_secret_with_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHAINLIT_AUTH_SECRET", raising=False)
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'app.db'}")
    plan = plan_auth(settings)
    assert not plan.enabled and plan.users == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")} | {
        "RAG_DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}"
    }
    add = [sys.executable, "-m", "core", "users", "add", "erin", "--role", "admin", "--password-stdin"]
    done = subprocess.run(add, input="long enough\n", text=True, capture_output=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    with pytest.raises(SettingsError) as err:
        plan_auth(settings)
    assert "CHAINLIT_AUTH_SECRET" in str(err.value)
    monkeypatch.setenv("CHAINLIT_AUTH_SECRET", "x" * 64)
    plan = plan_auth(load_settings(database_url=f"sqlite:///{tmp_path / 'app.db'}"))
    assert plan.enabled and plan.password and plan.users == 1
    listed = subprocess.run(
        [sys.executable, "-m", "core", "users", "list", "--json"], text=True, capture_output=True, env=env, cwd=ROOT
    )
    assert [u["identifier"] for u in json.loads(listed.stdout)] == ["erin"]
