"""The Documents list and managing one's documents from the chat (`/docs`, `/delete NAME`, `/reindex NAME`,
and the buttons)."""

from __future__ import annotations

from typing import Any

import chainlit as cl

from core.access import Viewer
from core.markdown import escape_markdown
from ingest.documents import DocumentInfo, delete_document, find_manageable, list_documents, reindex_document
from ui.auth import current_viewer
from ui.render import documents_list
from ui.resources import Resources

MAX_BUTTONS = 40


def doc_actions(doc: DocumentInfo) -> list[cl.Action]:
    label = doc.source if doc.scope == "team" else f"{doc.source} (private)"
    return [
        cl.Action(name="delete_doc", payload=doc.ref, label=f"Delete {label}", icon="trash-2"),
        cl.Action(name="reindex_doc", payload=doc.ref, label=f"Re-index {label}", icon="refresh-cw"),
    ]


async def show_documents(res: Resources) -> None:
    viewer = await current_viewer(res, cl.user_session.get("user"))
    visible = await list_documents(res.ingestor, viewer)
    if not visible:
        await cl.Message(content="There are no documents you can see yet. Attach files to add some.").send()
        return
    mine = {(d.source, d.scope, d.owner) for d in await list_documents(res.ingestor, viewer, manageable=True)}
    manageable = [doc for doc in visible if (doc.source, doc.scope, doc.owner) in mine]
    actions = [action for doc in manageable[:MAX_BUTTONS] for action in doc_actions(doc)]
    await cl.Message(content=documents_list(visible, len(manageable), MAX_BUTTONS), actions=actions).send()


async def manage_named(res: Resources, command: str, name: str) -> None:
    """`/delete NAME` and `/reindex NAME`: act when the name is unambiguous, else offer the choices."""
    viewer = await current_viewer(res, cl.user_session.get("user"))
    docs = [d for d in await list_documents(res.ingestor, viewer, manageable=True) if d.source == name]
    shown = escape_markdown(name)
    if not docs:
        await cl.Message(content=f"There is no document named {shown} that you can manage (see `/docs`).").send()
    elif len(docs) > 1:
        choices = [a for doc in docs for a in doc_actions(doc) if a.name.startswith(command)]
        await cl.Message(content=f"Several documents are named {shown}; which one?", actions=choices).send()
    else:
        await run_on_document(res, viewer, command, docs[0])


async def run_on_document(res: Resources, viewer: Viewer, command: str, doc: DocumentInfo) -> None:
    if command == "delete":
        removed = await delete_document(res.ingestor, viewer, doc)
        text = f"Deleted {escape_markdown(doc.source)} ({removed} chunks); it will no longer be cited."
    else:
        result = await reindex_document(res.ingestor, viewer, doc)
        text = f"Re-indexed: {escape_markdown(result.describe())}"
    await cl.Message(content=text).send()


async def manage(res: Resources, action: Any) -> None:
    """A Delete or Re-index button; its payload comes from the client and is checked like a typed name."""
    viewer = await current_viewer(res, cl.user_session.get("user"))
    doc = await find_manageable(res.ingestor, viewer, action.payload)
    await run_on_document(res, viewer, "delete" if action.name == "delete_doc" else "reindex", doc)
