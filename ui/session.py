"""One conversation's state, typed: history, search options, upload scope and the thread's name."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

import chainlit as cl
from chainlit.data import get_data_layer
from chainlit.input_widget import Select, Slider, Switch

from chains import SearchOptions
from core.access import Scope
from core.database import json_object
from core.settings import MAX_K, MAX_REWRITES

Turn = tuple[str, str]  # ("user" | "assistant", text)
UPLOAD_MARK = "upload"  # in a message's metadata: about attached files (their list, progress, summary)
ATTACHED = "Attached: "  # how a person's message lists its files (ui.render.attached)
Naming = Literal["upload", "question"] | None  # what named the thread so far


def apply_settings(current: SearchOptions, values: dict[str, Any]) -> SearchOptions:
    """Settings-panel values over the current options, clamped (values come from the client)."""
    try:
        return replace(
            current,
            k=int(values.get("k", current.k)),
            rewrites=int(values.get("rewrites", current.rewrites)),
            mode=values.get("mode", current.mode),
            threshold=float(values.get("threshold", current.threshold or 0.0)),
            hybrid=values.get("hybrid", current.hybrid) is True,
        ).clamped()
    except (TypeError, ValueError):
        return current


def upload_scope(values: dict[str, Any] | None, default: Scope, sign_in: bool) -> Scope:
    """Who new uploads are for: "private" only when people sign in (alone, there is no one to hide from)."""
    chosen = (values or {}).get("scope", default)
    return "private" if chosen == "private" and sign_in else "team"


def settings_widgets(options: SearchOptions, scope: Scope, full_text: bool, sign_in: bool) -> list[Any]:
    widgets: list[Any] = [
        Slider(id="k", label="Sources per answer (k)", initial=options.k, min=1, max=MAX_K, step=1),
        Select(id="mode", label="Search mode", values=["similarity", "mmr"], initial_value=options.mode),
        Slider(id="rewrites", label="Query rewrites", initial=options.rewrites, min=0, max=MAX_REWRITES, step=1),
        Slider(
            id="threshold", label="Score threshold (cosine)", initial=options.threshold or 0.0, min=-1, max=1, step=0.05
        ),
    ]
    if full_text:  # only when this Milvus and collection have the BM25 index
        widgets.append(Switch(id="hybrid", label="Hybrid search (meaning + exact words)", initial=options.hybrid))
    if sign_in:
        widgets.append(
            Select(
                id="scope",
                label="New uploads are visible to",
                items={"the whole team": "team", "only me": "private"},
                initial_value=scope,
            )
        )
    return widgets


def turns_of(steps: list[Any]) -> list[Turn]:
    """A stored thread's questions and the answers to them. Commands (`/docs`, `/delete …`), uploads and
    what the app said about them (the welcome, document lists, upload summaries) are not conversation."""
    turns: list[Turn] = []
    asked = False  # the last user message was a question, so the next assistant message answers it
    for step in steps:
        kind, text = step.get("type"), (step.get("output") or "").strip()
        if json_object(step.get("metadata")).get(UPLOAD_MARK):
            continue
        if kind == "user_message":
            text = text.split("\n\n" + ATTACHED)[0].strip()  # a question sent with files
            asked = bool(text) and not text.startswith("/")
            if asked:
                turns.append(("user", text))
        elif kind == "assistant_message" and asked and text:
            turns.append(("assistant", text))
            asked = False
    return turns


class ChatSession:
    """This conversation's state in Chainlit's user session."""

    def __init__(self, max_turns: int) -> None:
        self.max_messages = 2 * max_turns

    @property
    def history(self) -> list[Turn]:
        return list(cl.user_session.get("history") or [])

    @history.setter
    def history(self, turns: list[Turn]) -> None:
        cl.user_session.set("history", turns[-self.max_messages :] if self.max_messages else [])

    def add_turn(self, question: str, answer: str) -> None:
        self.history = [*self.history, ("user", question), ("assistant", answer)]

    @property
    def options(self) -> SearchOptions | None:
        options = cl.user_session.get("options")
        return options if isinstance(options, SearchOptions) else None

    @options.setter
    def options(self, options: SearchOptions) -> None:
        cl.user_session.set("options", options)

    @property
    def panel(self) -> dict[str, Any]:
        """The settings panel's current values."""
        return dict(cl.context.session.chat_settings or {})

    @property
    def naming(self) -> Naming:
        return cl.user_session.get("thread_named")  # type: ignore[no-any-return]

    @naming.setter
    def naming(self, value: Naming) -> None:
        cl.user_session.set("thread_named", value)

    async def remember(self, title: str, final: bool) -> None:
        """Store the panel's values with the thread now (Chainlit only does so on disconnect), and name the
        thread: Chainlit names it after its first message, which is empty when it only carried files, so
        the upload names it then, until the first question does."""
        layer = get_data_layer()
        if layer is None:
            return
        named = self.naming
        name = title.strip()[:100] if named != "question" and (final or named is None) else None
        session = cl.context.session
        await layer.update_thread(session.thread_id, name=name, metadata={"chat_settings": self.panel})
        if name:
            self.naming = "question" if final else "upload"
