"""A conversation starts (welcome, example questions) or resumes: the settings panel and commands."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import chainlit as cl
from chainlit.types import CommandDict

from chains import SearchOptions
from core.access import Viewer, visible_to
from core.errors import KnowledgeBaseError
from core.filters import all_of, field_eq
from ingest import SUPPORTED
from ui import auth, chat, render
from ui.resources import Resources
from ui.session import ChatSession, apply_settings, settings_widgets, upload_scope

COMMANDS: list[CommandDict] = [
    {
        "id": "Documents",
        "icon": "files",
        "description": "List documents; delete or re-index yours",
        "button": True,
        "persistent": False,
        "selected": False,
    },
]


async def begin(res: Resources, values: dict[str, Any]) -> Viewer:
    """Options from the panel's values, the panel itself and the Documents command; who this is for."""
    viewer = await auth.current_viewer(res, cl.user_session.get("user"))
    options = apply_settings(SearchOptions.from_settings(res.settings), values)
    ChatSession(res.settings.history_turns).options = options
    scope = upload_scope(values, res.settings.default_scope, res.sign_in)
    await cl.ChatSettings(settings_widgets(options, scope, res.kb.has_full_text, res.sign_in)).send()
    await cl.context.emitter.set_commands(COMMANDS)
    return viewer


EXAMPLES = 3
# What a new conversation's welcome shows (document counts, example questions) is read from Milvus once per
# viewer's visibility and kept this long, or until this process writes or deletes chunks: on a large
# knowledge base those filtered reads cost more CPU than answering a question. Another replica's upload
# shows within this time.
WELCOME_TTL_S = 30.0
MAX_WELCOMES = 1_000


@dataclass
class Welcome:
    documents: int
    chunks: int
    questions: list[str]
    generation: int
    at: float


_welcomes: dict[tuple[int, str], Welcome] = {}


async def example_questions(res: Resources, viewer: Viewer) -> list[str]:
    """Up to three questions about different documents the viewer may read, from a document's title and one
    of its headings; documents with headings first (their questions are the specific ones)."""
    visible = visible_to(viewer)
    picked: dict[str, tuple[str, str]] = {}  # source -> (title, headings)
    try:
        headed = all_of('headings != ""', "chunk < 20", visible) or ""
        for row in await res.kb.query(headed, ["source", "title", "headings"], limit=200):
            picked.setdefault(str(row.get("source")), (str(row.get("title") or ""), str(row.get("headings") or "")))
    except KnowledgeBaseError:  # a Milvus that cannot filter on this field: titles alone still make questions
        pass
    if len(picked) < EXAMPLES:
        openings = all_of(field_eq("chunk", 0), visible) or ""
        for row in await res.kb.query(openings, ["source", "title"], limit=EXAMPLES * 4):
            picked.setdefault(str(row.get("source")), (str(row.get("title") or ""), ""))
    chosen = list(picked.items())[:EXAMPLES]
    return [render.example_question(title, source, headings) for source, (title, headings) in chosen]


async def welcome_content(res: Resources, viewer: Viewer) -> Welcome:
    """The welcome's figures and example questions for this viewer, read again when out of date."""
    visible = visible_to(viewer)
    key = (id(res.kb), visible or "")
    now = time.monotonic()
    known = _welcomes.get(key)
    if known is not None and known.generation == res.kb.generation and now - known.at < WELCOME_TTL_S:
        return known
    generation = res.kb.generation
    count, chunks = await res.kb.summary(visible)
    questions = await example_questions(res, viewer) if count else []
    if len(_welcomes) > MAX_WELCOMES:  # one per visibility (each person's private documents): bounded
        _welcomes.clear()
    _welcomes[key] = fresh = Welcome(count, chunks, questions, generation, now)
    return fresh


async def welcome(res: Resources) -> None:
    viewer = await begin(res, {})
    content = await welcome_content(res, viewer)
    count, chunks, questions = content.documents, content.chunks, content.questions
    actions = [cl.Action(name="ask", payload={"question": q}, label=q, icon="message-circle") for q in questions]
    kinds = [ext.lstrip(".") for ext in SUPPORTED]
    await cl.Message(content=render.welcome(count, chunks, kinds), actions=actions).send()


async def resumed(res: Resources, values: dict[str, Any]) -> None:
    await begin(res, values)
    # Chainlit sends the thread (and so opens its sources) right after this returns.
    await chat.close_side_panel(chat.AFTER_RESUME_S)
