"""Chat history on Chainlit's SQLAlchemy data layer, with what Chainlit 2.12 leaves open closed:
thread metadata keeps only settings and sharing state, feedback belongs to the thread's author, and a
shared thread is shown as it was when it was shared."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chainlit.data.sql_alchemy import SQLAlchemyDataLayer
from chainlit.step import StepDict
from chainlit.types import Feedback, ThreadDict

from core.database import json_object

# What a thread's metadata may hold. Chainlit persists the whole user session there on disconnect (our
# conversation history, the session id, ...), which a shared thread would hand to its readers.
log = logging.getLogger(__name__)
KEPT_METADATA = ("chat_settings", "chat_profile", "is_shared", "shared_at")


SHARING = ("is_shared", "shared_at")  # written by Chainlit's share endpoint only


def clean_metadata(raw: Any) -> dict[str, Any]:
    return {k: v for k, v in json_object(raw).items() if k in KEPT_METADATA}


def _single_encoded(raw: Any) -> bool:
    """Whether a stored metadata value is one JSON object (a dict from JSONB, or JSON text of an object)."""
    if raw is None or isinstance(raw, dict):
        return True
    try:
        return isinstance(raw, str) and isinstance(json.loads(raw), dict)
    except json.JSONDecodeError:
        return False


@dataclass(frozen=True)
class StepOwner:
    thread_id: str
    author: str | None  # the thread's user identifier


class HistoryLayer(SQLAlchemyDataLayer):
    """Chainlit's SQLAlchemy layer with metadata kept clean and ownership looked up from the database."""

    async def update_thread(
        self,
        thread_id: str,
        name: str | None = None,
        user_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        tags: list[str] | None = None,
    ) -> None:
        """Store kept metadata keys, once JSON-encoded (Chainlit merges them into the stored ones).

        Chainlit writes the whole user session back when a tab goes away (`to_persistable`, always with
        `client_type`); a session that resumed a thread holds the thread's sharing state as it was then, and
        writing that back would share again a thread unshared since. Sharing state comes from the share
        endpoint only, and unsharing drops `shared_at`."""
        kept = None
        if metadata is not None:
            kept = clean_metadata(metadata)
            if isinstance(metadata, dict) and "client_type" in metadata:
                for key in SHARING:
                    kept.pop(key, None)
            elif kept.get("is_shared") is False and "shared_at" not in kept:
                kept["shared_at"] = None  # unshared: Chainlit's merge drops a key given as None
        if any(v is not None for v in (name, user_id, metadata, tags)):
            await self._repair_metadata(thread_id)
        await super().update_thread(thread_id, name=name, user_id=user_id, metadata=kept, tags=tags)

    async def _repair_metadata(self, thread_id: str) -> None:
        """Rewrite a row whose metadata is not one JSON object (encoded twice, say) as one: Chainlit's
        merge would fail on it, and the browser could not read it."""
        rows = await self.execute_sql('SELECT "metadata" FROM threads WHERE "id" = :id', {"id": thread_id})
        if not isinstance(rows, list) or not rows or _single_encoded(rows[0].get("metadata")):
            return
        await self.execute_sql(
            'UPDATE threads SET "metadata" = :metadata WHERE "id" = :id',
            {"metadata": json.dumps(clean_metadata(rows[0].get("metadata"))), "id": thread_id},
        )

    async def get_all_user_threads(
        self, user_id: str | None = None, thread_id: str | None = None
    ) -> list[ThreadDict] | None:
        """Threads with their metadata as a dict of the kept keys, for `get_thread` and for the history list
        (`POST /project/threads`), whose Share dialog reads `metadata.is_shared`: Chainlit passes the column
        through as it comes, JSON text on SQLite, which the browser receives as a string."""
        threads = await super().get_all_user_threads(user_id=user_id, thread_id=thread_id)
        for thread in threads or []:
            thread["metadata"] = clean_metadata(thread.get("metadata"))
        return threads

    async def create_element(self, element: Any) -> None:
        """Store an answer's source, but not a file the person attached (Chainlit gives those their upload's
        id as both id and key): it is indexed and kept already, and the chat lists it by name."""
        if element.chainlit_key and element.id == element.chainlit_key:
            return
        await super().create_element(element)

    async def create_step(self, step_dict: StepDict) -> None:
        """Write a step, unless its id is a step of another thread: a client chooses its messages' ids, and
        Chainlit's upsert would otherwise move someone else's message (and its feedback) into this thread."""
        rows = await self.execute_sql('SELECT "threadId" FROM steps WHERE "id" = :id', {"id": step_dict.get("id")})
        if isinstance(rows, list) and rows and rows[0]["threadId"] != step_dict.get("threadId"):
            log.warning("refused a step whose id belongs to another thread")
            return
        await super().create_step(step_dict)

    async def step_owner(self, step_id: str) -> StepOwner | None:
        """Which thread a message belongs to and who wrote that thread, from the database."""
        rows = await self.execute_sql(
            'SELECT s."threadId" AS thread, t."userIdentifier" AS author FROM steps s '
            'JOIN threads t ON t."id" = s."threadId" WHERE s."id" = :id',
            {"id": step_id},
        )
        if not isinstance(rows, list) or not rows:
            return None
        return StepOwner(str(rows[0]["thread"]), rows[0]["author"])

    async def feedback_step(self, feedback_id: str) -> str | None:
        """The message a stored feedback is about."""
        rows = await self.execute_sql('SELECT "forId" FROM feedbacks WHERE "id" = :id', {"id": feedback_id})
        return str(rows[0]["forId"]) if isinstance(rows, list) and rows else None

    async def owned_feedback(self, author: str, feedback: Feedback) -> Feedback | None:
        """`feedback` with its thread id from the database, when `author` wrote the thread; else None."""
        owner = await self.step_owner(feedback.forId)
        if owner is None or owner.author != author:
            return None
        if feedback.id and (await self.feedback_step(feedback.id)) not in (None, feedback.forId):
            return None  # an existing feedback id of another message: not this one to overwrite
        return Feedback(
            forId=feedback.forId,
            threadId=owner.thread_id,
            value=feedback.value,
            comment=feedback.comment,
            id=feedback.id,
        )


def when(value: Any) -> datetime | None:
    """A stored timestamp (ISO text, with or without its zone) as an aware datetime; None if it is not one."""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def as_shared(thread: ThreadDict) -> None:
    """Cut a thread, in place, to what it was when it was shared: later steps and their elements go, and so
    do the owner's ratings. If anything goes wrong, readers get no steps at all (Chainlit would otherwise
    send the whole thread)."""
    try:
        metadata = clean_metadata(thread.get("metadata"))
        shared_at = when(metadata.get("shared_at"))
        metadata.pop("chat_settings", None)
        thread["metadata"] = metadata
        if shared_at is None:
            raise ValueError("a shared thread without shared_at")
        steps = [s for s in thread.get("steps") or [] if (when(s.get("createdAt")) or shared_at) <= shared_at]
        for step in steps:
            step.pop("feedback", None)
        kept = {s["id"] for s in steps}
        thread["steps"] = steps
        thread["elements"] = [e for e in thread.get("elements") or [] if e.get("forId") in kept]
    except Exception:
        log.exception("could not cut a shared thread to its snapshot; showing nothing")
        thread["steps"], thread["elements"] = [], []
