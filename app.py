"""Chainlit's events, routed to the ui/ package (which calls `chains/` and `ingest/`); no logic of its own."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import chainlit as cl
from chainlit.config import config as chainlit_config
from chainlit.data.sql_alchemy import SQLAlchemyDataLayer
from chainlit.server import app as chainlit_app
from chainlit.server import sio
from chainlit.types import ThreadDict

from chains import SearchOptions
from core.errors import KnowledgeBaseError
from core.markdown import escape_markdown
from core.settings import get_settings
from ui import auth, chat, documents, start_chat
from ui.guards import install
from ui.history import HistoryLayer, as_shared
from ui.resources import Lifetime
from ui.session import ChatSession, apply_settings, turns_of
from ui.storage import make_storage
from ui.uploads import sweep_forever

# Chainlit decides whether sign-in is on by which callbacks exist, so the plan is made when it loads us.
AUTH = auth.plan_or_exit(get_settings)
SETTINGS = get_settings()
ROOT_PATH = chainlit_config.run.root_path or ""


async def is_member(identifier: str) -> bool:
    """Whether this identity is still on the user list (checked on every request and socket connection)."""
    return await (await RESOURCES.get()).users.get(identifier) is not None


UPLOADS = install(chainlit_app, sio, AUTH.enabled, is_member)  # guards at our edge of Chainlit (SECURITY.md)
RESOURCES = Lifetime(
    get_settings,
    AUTH.enabled,
    background=[
        lambda res: res.recovery.watch(res.closing),  # settle what a dead replica left half-written
        lambda res: sweep_forever(UPLOADS, res.settings.unsent_upload_ttl_s, res.closing),  # uploads never sent
    ],
)


def session() -> ChatSession:
    return ChatSession(SETTINGS.history_turns)


async def guarded(handler: Callable[..., Awaitable[None]], *args: Any) -> None:
    """Run a handler with the shared resources; errors become a plain message, Stop stays Stop."""
    try:
        await handler(await RESOURCES.get(), *args)
    except asyncio.CancelledError:
        raise  # the user pressed Stop: Chainlit ends the message
    except Exception as exc:
        await chat.report_error(exc)


# --- the server's life -------------------------------------------------------------------------
@cl.on_app_startup
async def startup() -> None:
    """Fail fast: bad settings or a mismatched collection stop the server with a plain message."""
    try:
        await RESOURCES.get()
    except KnowledgeBaseError as exc:
        print(f"Cannot start: {exc}", file=sys.stderr, flush=True)
        os._exit(2)  # Chainlit swallows exceptions raised here; a half-started server helps nobody


@cl.on_app_shutdown
async def shutdown() -> None:
    await RESOURCES.close()


# --- sign-in, history, sharing (registered only when there are users, SSO or OAuth) ----------------
if AUTH.password:

    @cl.password_auth_callback
    async def password_login(username: str, password: str) -> cl.User | None:
        return await auth.password_user(await RESOURCES.get(), username, password)


if AUTH.header:

    @cl.header_auth_callback
    async def header_login(headers: Any) -> cl.User | None:
        """SSO: a trusted proxy authenticates and passes the user in a header (strip it from clients!)."""
        value = headers.get(AUTH.header)
        return await auth.sso_user(await RESOURCES.get(), value) if value else None


if AUTH.oauth:

    @cl.oauth_callback
    async def oauth_login(
        provider_id: str, token: str, raw_user_data: dict[str, str], default_user: cl.User, id_token: str | None = None
    ) -> cl.User | None:
        return await auth.sso_user(await RESOURCES.get(), default_user.identifier)


if AUTH.enabled:

    @cl.data_layer
    def history_layer() -> SQLAlchemyDataLayer:
        return HistoryLayer(conninfo=SETTINGS.database, storage_provider=make_storage(SETTINGS, ROOT_PATH))

    @cl.on_shared_thread_view
    async def view_shared(thread: ThreadDict, viewer: cl.User | None) -> bool:
        """Readable by signed-in users of this deployment, never anonymously, and only as it was when it was
        shared (Chainlit sends readers this very dict)."""
        metadata = thread.get("metadata") or {}
        allowed = viewer is not None and isinstance(metadata, dict) and bool(metadata.get("is_shared"))
        if allowed:
            as_shared(thread)
        return allowed


# --- a conversation starts or resumes ------------------------------------------------------------
@cl.on_chat_start
async def start() -> None:
    session().history = []
    await guarded(start_chat.welcome)


@cl.on_chat_resume
async def resume(thread: ThreadDict) -> None:
    """Reopened conversation: its settings and its last turns come back, so follow-ups work."""
    session().history = turns_of(thread.get("steps") or [])
    session().naming = "question" if thread.get("name") else None
    await guarded(start_chat.resumed, cl.user_session.get("chat_settings") or {})


@cl.on_settings_update
async def update_settings(values: dict[str, Any]) -> None:
    current = session().options or SearchOptions.from_settings(SETTINGS)
    session().options = apply_settings(current, values)


# --- messages and buttons ------------------------------------------------------------------------
@cl.action_callback("ask")
async def ask_example(action: cl.Action) -> None:
    question = str(action.payload.get("question", ""))[:500].strip()  # payloads come from the client
    if question:
        await cl.Message(content=escape_markdown(question), type="user_message").send()
        await guarded(chat.answer, session(), question)


@cl.action_callback("delete_doc")
async def delete_doc(action: cl.Action) -> None:
    await guarded(documents.manage, action)


@cl.action_callback("reindex_doc")
async def reindex_doc(action: cl.Action) -> None:
    await guarded(documents.manage, action)


@cl.on_message
async def on_message(message: cl.Message) -> None:
    UPLOADS.sent(cl.context.session.id, [str(e.id) for e in message.elements or []])
    text = message.content.strip()
    if message.command == "Documents" or text.lower() in ("/docs", "/documents"):
        await guarded(documents.show_documents)
        return
    command, _, name = text.partition(" ")
    if command.lower() in ("/delete", "/reindex") and name.strip():
        await guarded(documents.manage_named, command.lower().lstrip("/"), name.strip())
        return
    attached = [str(e.name) for e in message.elements or []]
    if message.elements:
        await guarded(chat.ingest_files, session(), message)
    await chat.mark_first_interaction(text, attached)
    if text:
        await guarded(chat.answer, session(), text)
