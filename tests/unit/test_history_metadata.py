"""A thread's metadata reaches the browser as one JSON object, and sharing state is the share endpoint's
(issue 15, item 6). tests/e2e/test_sharing_state.py drives the same through Chainlit's Share dialog."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

SHARED = {"chat_settings": {"k": 3}, "is_shared": True, "shared_at": "2026-12-01T08:00:00Z"}


@pytest.fixture(autouse=True)
def app_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAINLIT_APP_ROOT", str(tmp_path))  # `import chainlit` writes its files there


@pytest.mark.parametrize(
    "stored",
    [
        SHARED,  # PostgreSQL's JSONB column: a dict
        json.dumps(SHARED),  # SQLite's TEXT column: JSON text
        json.dumps(json.dumps(SHARED)),  # a row written with its JSON encoded twice
        json.dumps(SHARED | {"id": "session-id", "history": ["a private turn"], "env": {"KEY": "x"}}),
    ],
)
def test_stored_metadata_decodes_to_the_kept_keys(stored: Any) -> None:
    from ui.history import clean_metadata

    assert clean_metadata(stored) == SHARED


@pytest.mark.parametrize("stored", [None, "", "not json", "[1, 2]", json.dumps("text"), 7, ["is_shared"]])
def test_anything_else_is_no_metadata(stored: Any) -> None:
    from ui.history import clean_metadata

    assert clean_metadata(stored) == {}


async def test_the_history_list_sends_metadata_as_an_object_and_sharing_stays_the_share_endpoints(
    tmp_path: Path,
) -> None:
    from chainlit.context import init_http_context
    from chainlit.types import Pagination, ThreadFilter
    from chainlit.user import User

    from core.database import open_database
    from ui.history import HistoryLayer

    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    async with open_database(url):
        pass
    layer = HistoryLayer(conninfo=url)
    try:
        user = await layer.create_user(User(identifier="alice", metadata={}))
        assert user is not None
        init_http_context(user=user)
        thread = str(uuid.uuid4())
        await layer.update_thread(thread, name="Deploys", user_id=user.id, metadata={"chat_settings": {"k": 3}})

        async def listed() -> Any:
            page = await layer.list_threads(Pagination(first=5), ThreadFilter(userId=user.id))
            return json.loads(json.dumps(page.to_dict()))["data"][0]["metadata"]  # as the browser gets it

        async def stored() -> Any:
            rows = await layer.execute_sql('SELECT "metadata" FROM threads WHERE "id" = :id', {"id": thread})
            assert isinstance(rows, list)
            return rows[0]["metadata"]

        # What Chainlit's share endpoint does: the thread's metadata plus the sharing state.
        found = await layer.get_thread(thread)
        assert found is not None
        shared = found["metadata"] or {}
        await layer.update_thread(thread, metadata={**shared, "is_shared": True, "shared_at": "2026-12-01T08:00:00Z"})
        assert await listed() == SHARED
        assert json.loads(await stored()) == SHARED  # one encoding in the column

        # A tab that resumed the thread before it was unshared writes its session back when it closes.
        snapshot = {**SHARED, "client_type": "webapp", "env": {}, "id": "session-id"}
        await layer.update_thread(thread, metadata={"chat_settings": {"k": 3}, "is_shared": False})  # Unshare
        await layer.update_thread(thread, metadata=snapshot)
        assert await listed() == {"chat_settings": {"k": 3}, "is_shared": False}

        # A row stored with its JSON encoded twice is read as an object and rewritten once encoded.
        await layer.execute_sql(
            'UPDATE threads SET "metadata" = :m WHERE "id" = :id', {"m": json.dumps(json.dumps(SHARED)), "id": thread}
        )
        assert await listed() == SHARED
        await layer.update_thread(thread, name="Deploys, renamed")
        assert json.loads(await stored()) == SHARED
        renamed = await layer.get_thread(thread)
        assert renamed is not None and renamed["name"] == "Deploys, renamed"
    finally:
        await layer.engine.dispose()
