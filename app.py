"""Chainlit handlers: adapt chat events to `ingest/` and `chains/`; no business logic here."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import chainlit as cl
from chainlit.data import get_data_layer
from chainlit.data.sql_alchemy import SQLAlchemyDataLayer
from chainlit.input_widget import Select, Slider, Switch
from chainlit.types import CommandDict, ThreadDict

from chains import RagChain, SearchOptions, Source, Trace, to_messages
from core.access import LOCAL, Scope, Viewer, visible_to
from core.auth import AuthPlan, plan_auth
from core.errors import KnowledgeBaseError
from core.models import make_chat_model
from core.runtime import open_knowledge_base
from core.settings import get_settings
from core.users import UserRecord, UserStore
from ingest import SUPPORTED, FileInput, FileResult, Ingestor
from ingest.documents import (
    DocumentInfo,
    delete_document,
    describe,
    find_manageable,
    list_documents,
    reindex_document,
)
from ingest.pipeline import kept_file

log = logging.getLogger(__name__)


class Resources:
    """Built once per process at start-up, shared by every session."""

    # A plain class: Chainlit loads app.py outside sys.modules, which dataclasses cannot handle.
    def __init__(self, chain: RagChain, ingestor: Ingestor, users: UserStore) -> None:
        self.chain = chain
        self.ingestor = ingestor
        self.users = users
        self.close = asyncio.Event()


_resources: Resources | None = None
_resources_lock = asyncio.Lock()
_holder: list[asyncio.Task[None]] = []


async def resources() -> Resources:
    """The shared knowledge base, chain and ingestor (bound to Chainlit's event loop)."""
    global _resources
    async with _resources_lock:
        if _resources is None:
            settings = get_settings()
            ready: asyncio.Future[Resources] = asyncio.get_running_loop().create_future()

            async def hold() -> None:
                # Keep the knowledge base open until shutdown so it is flushed and closed cleanly.
                try:
                    async with open_knowledge_base(settings) as kb:
                        chain = RagChain(kb, make_chat_model(settings), settings)
                        res = Resources(chain, Ingestor(kb), UserStore(kb.engine))
                        for recovered in await res.ingestor.recover():  # after a crash: settle
                            log.warning("after an interruption: %s", recovered.describe())
                        ready.set_result(res)
                        await res.ingestor.watch(res.close)  # until shutdown: settles what a dead replica left
                except BaseException as exc:
                    if not ready.done():
                        ready.set_exception(exc)
                    raise

            _holder.append(asyncio.create_task(hold()))
            _resources = await ready
        return _resources


@cl.on_app_startup
async def startup() -> None:
    """Fail fast: bad settings or a mismatched collection stop the server with a plain message."""
    try:
        await resources()
    except KnowledgeBaseError as exc:
        print(f"Cannot start: {exc}", file=sys.stderr, flush=True)
        os._exit(2)  # Chainlit swallows exceptions raised here; a half-started server helps nobody


@cl.on_app_shutdown
async def shutdown() -> None:
    if _resources is not None:
        _resources.close.set()
        await asyncio.gather(*_holder, return_exceptions=True)


# --- sign-in, history, sharing (registered only when there are users, SSO or OAuth) ----------------
def _plan() -> AuthPlan:
    try:
        return plan_auth(get_settings())
    except KnowledgeBaseError as exc:
        print(f"Cannot start: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


# Chainlit decides at import time whether sign-in is on: it looks for these callbacks.
AUTH = _plan()


def chainlit_user(record: UserRecord) -> cl.User:
    return cl.User(identifier=record.identifier, metadata={"role": record.role})


if AUTH.password:

    @cl.password_auth_callback
    async def password_login(username: str, password: str) -> cl.User | None:
        record = await (await resources()).users.verify(username, password)
        return chainlit_user(record) if record else None


if AUTH.header:

    @cl.header_auth_callback
    async def header_login(headers: Any) -> cl.User | None:
        """SSO: a trusted proxy authenticates and passes the user in a header (strip it from clients!)."""
        value = headers.get(AUTH.header)
        return await sso_user(value) if value else None


if AUTH.oauth:

    @cl.oauth_callback
    async def oauth_login(
        provider_id: str, token: str, raw_user_data: dict[str, str], default_user: cl.User, id_token: str | None = None
    ) -> cl.User | None:
        return await sso_user(default_user.identifier)


async def sso_user(identifier: str) -> cl.User | None:
    """A user vouched for by OAuth or the SSO header: known users keep their role; others per settings."""
    users = (await resources()).users
    record = await users.get(identifier)
    if record is None and get_settings().auth_auto_signup:
        record = await users.add(identifier, None, "member")
    return chainlit_user(record) if record else None


if AUTH.enabled:

    @cl.data_layer
    def history_layer() -> SQLAlchemyDataLayer:
        return SQLAlchemyDataLayer(conninfo=get_settings().database)

    @cl.on_shared_thread_view
    async def view_shared(thread: ThreadDict, viewer: cl.User | None) -> bool:
        """A shared conversation is readable by signed-in users of this deployment, never anonymously."""
        metadata = thread.get("metadata") or {}
        return viewer is not None and isinstance(metadata, dict) and bool(metadata.get("is_shared"))


async def current_viewer(res: Resources) -> Viewer:
    """Who this session is for, checked against the user list on every use (removed users lose access)."""
    if not AUTH.enabled:
        return LOCAL
    user = cl.user_session.get("user")
    record = await res.users.get(user.identifier) if user else None
    if record is None:
        raise KnowledgeBaseError("Your account is no longer on this deployment's user list. Please sign in again.")
    return record.viewer


async def report_error(exc: BaseException) -> None:
    if isinstance(exc, KnowledgeBaseError):
        text = str(exc)
    else:
        log.exception("unexpected error", exc_info=exc)
        text = "Something went wrong on our side while handling this message. Please try again."
    await cl.ErrorMessage(content=text).send()


# --- session start -----------------------------------------------------------------------------
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


def settings_widgets(options: SearchOptions, scope: Scope, full_text: bool) -> list[Any]:
    widgets: list[Any] = [
        Slider(id="k", label="Sources per answer (k)", initial=options.k, min=1, max=20, step=1),
        Select(id="mode", label="Search mode", values=["similarity", "mmr"], initial_value=options.mode),
        Slider(id="rewrites", label="Query rewrites", initial=options.rewrites, min=0, max=8, step=1),
        Slider(
            id="threshold", label="Score threshold (cosine)", initial=options.threshold or 0.0, min=-1, max=1, step=0.05
        ),
    ]
    if full_text:  # only when this Milvus and collection have the BM25 index
        widgets.append(Switch(id="hybrid", label="Hybrid search (meaning + exact words)", initial=options.hybrid))
    if AUTH.enabled:  # with one local user there is no one to keep documents private from
        widgets.append(
            Select(
                id="scope",
                label="New uploads are visible to",
                items={"the whole team": "team", "only me": "private"},
                initial_value=scope,
            )
        )
    return widgets


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


def upload_scope(values: dict[str, Any] | None) -> Scope:
    chosen = (values or {}).get("scope", get_settings().default_scope)
    return "private" if chosen == "private" and AUTH.enabled else "team"


async def example_questions(res: Resources, viewer: Viewer, limit: int = 3) -> list[cl.Action]:
    """One example question per document (by title), offered as buttons on the welcome message."""
    rows = await res.chain.kb.query(f"chunk == 0 and ({visible_to(viewer)})", ["title", "source"], limit=limit)
    questions = [f"What is {row.get('title') or row.get('source')} about?" for row in rows]
    return [cl.Action(name="ask", payload={"question": q}, label=q, icon="message-circle") for q in questions]


@cl.action_callback("ask")
async def ask_example(action: cl.Action) -> None:
    question = str(action.payload.get("question", ""))[:500].strip()  # payloads come from the client
    if not question:
        return
    await cl.Message(content=question, type="user_message").send()
    await guarded(answer, question)


async def guarded(handler: Any, *args: Any) -> None:
    """Run a handler with the shared resources; errors become a plain message, Stop stays Stop."""
    try:
        await handler(await resources(), *args)
    except asyncio.CancelledError:
        raise  # the user pressed Stop: Chainlit ends the message
    except Exception as exc:
        await report_error(exc)


async def begin_session(values: dict[str, Any]) -> tuple[Resources, Viewer]:
    res = await resources()
    viewer = await current_viewer(res)
    options = apply_settings(SearchOptions.from_settings(res.chain.settings), values)
    cl.user_session.set("options", options)
    full_text = res.chain.kb.full_text is not None
    await cl.ChatSettings(settings_widgets(options, upload_scope(values), full_text)).send()
    await cl.context.emitter.set_commands(COMMANDS)
    return res, viewer


@cl.on_chat_start
async def start() -> None:
    cl.user_session.set("history", [])
    try:
        res, viewer = await begin_session({})
        documents, chunks = await res.chain.kb.summary(visible_to(viewer))
        examples = await example_questions(res, viewer) if documents else []
    except Exception as exc:
        await report_error(exc)
        return
    holds = (
        f"The knowledge base holds **{documents} documents** ({chunks} chunks) that you can search."
        if documents
        else "The knowledge base is empty."
    )
    kinds = ", ".join(ext.lstrip(".") for ext in SUPPORTED)
    tip = f"Attach files to a message with the paperclip to add them ({kinds}), then ask a question."
    if examples:
        tip += " Or try one of these:"
    await cl.Message(content=f"{holds} {tip}", actions=examples).send()


@cl.on_chat_resume
async def resume(thread: ThreadDict) -> None:
    """Reopened conversation: its settings and its last turns come back, so follow-ups work."""
    turns: list[tuple[str, str]] = []
    for step in thread.get("steps") or []:
        kind, text = step.get("type"), step.get("output") or ""
        if kind == "assistant_message" and not turns:
            continue  # the welcome message is not part of the conversation
        if kind in ("user_message", "assistant_message") and text.strip():
            turns.append(("user" if kind == "user_message" else "assistant", text))
    cl.user_session.set("history", turns[-2 * get_settings().history_turns :])
    cl.user_session.set("thread_named", "question" if thread.get("name") else None)
    try:
        await begin_session(cl.user_session.get("chat_settings") or {})
    except Exception as exc:
        await report_error(exc)


@cl.on_settings_update
async def update_settings(values: dict[str, Any]) -> None:
    current: SearchOptions = cl.user_session.get("options") or SearchOptions.from_settings(get_settings())
    cl.user_session.set("options", apply_settings(current, values))


async def remember(title: str, final: bool) -> None:
    """Store the panel's values with the thread now (Chainlit only does so on disconnect), and name the thread.

    Chainlit names a thread after its first message, which is empty when it only carried files: the upload
    names it then, until the first question does.
    """
    layer = get_data_layer()
    if layer is None:
        return
    named = cl.user_session.get("thread_named")  # None, "upload" or "question"
    name = title.strip()[:100] if named != "question" and (final or named is None) else None
    session = cl.context.session
    await layer.update_thread(session.thread_id, name=name, metadata={"chat_settings": session.chat_settings or {}})
    if name:
        cl.user_session.set("thread_named", "question" if final else "upload")


# --- uploads -----------------------------------------------------------------------------------
async def ingest_files(res: Resources, elements: list[Any]) -> None:
    viewer = await current_viewer(res)
    scope = upload_scope(cl.context.session.chat_settings)
    files = [FileInput(Path(e.path), e.name, scope, viewer.identifier) for e in elements if getattr(e, "path", None)]
    limit = get_settings().max_files_per_message
    if len(files) > limit:  # the browser enforces Chainlit's max_files, a script does not have to
        skipped = ", ".join(f.source for f in files[limit:])
        await cl.ErrorMessage(content=f"Only {limit} files per message are indexed; not indexed: {skipped}").send()
        files = files[:limit]
    if not files:
        return
    line_of: dict[str, int] = {}
    for i, f in enumerate(files):
        line_of.setdefault(f.source, i)
    async with cl.Step(name="Ingest", type="tool", show_input=False) as step:
        lines: list[str] = [f"{f.source}: reading…" for f in files]
        step.output = "\n".join(lines)
        await step.update()

        async def progress(result: FileResult) -> None:
            lines[line_of[result.source]] = result.describe()
            step.output = "\n".join(lines)
            await step.update()

        results = await res.ingestor.ingest(files, on_result=progress, viewer=viewer)
    where = "visible to you only" if scope == "private" else "shared with the team"
    summary = "\n".join(f"- {r.describe()}" for r in results)
    await cl.Message(content=f"{summary}\n\nNew documents are {where}.").send()
    await remember("Uploaded " + ", ".join(f.source for f in files), final=False)


# --- documents ---------------------------------------------------------------------------------
MAX_LISTED, MAX_BUTTONS = 200, 40


def doc_actions(doc: DocumentInfo) -> list[cl.Action]:
    label = doc.source if doc.scope == "team" else f"{doc.source} (private)"
    return [
        cl.Action(name="delete_doc", payload=doc.ref, label=f"Delete {label}", icon="trash-2"),
        cl.Action(name="reindex_doc", payload=doc.ref, label=f"Re-index {label}", icon="refresh-cw"),
    ]


async def show_documents(res: Resources) -> None:
    viewer = await current_viewer(res)
    visible = await list_documents(res.ingestor, viewer)
    mine = {(d.source, d.scope, d.owner) for d in await list_documents(res.ingestor, viewer, manageable=True)}
    if not visible:
        await cl.Message(content="There are no documents you can see yet. Attach files to add some.").send()
        return
    lines = [f"- {describe(doc)}" for doc in visible[:MAX_LISTED]]
    if len(visible) > MAX_LISTED:
        lines.append(f"- … and {len(visible) - MAX_LISTED} more (`python -m ingest.manage list` shows all)")
    manageable = [doc for doc in visible if (doc.source, doc.scope, doc.owner) in mine]
    actions = [action for doc in manageable[:MAX_BUTTONS] for action in doc_actions(doc)]
    if not manageable:
        note = "None of them are yours to manage."
    else:
        note = "Buttons are shown for the documents you can manage"
        note += f" (the first {MAX_BUTTONS}); " if len(manageable) > MAX_BUTTONS else "; "
        note += "or type `/delete NAME` or `/reindex NAME`."
    content = f"**{len(visible)} documents**\n" + "\n".join(lines) + f"\n\n{note}"
    await cl.Message(content=content, actions=actions).send()


async def manage_named(res: Resources, command: str, name: str) -> None:
    """`/delete NAME` and `/reindex NAME`: act when the name is unambiguous, else offer the choices."""
    viewer = await current_viewer(res)
    docs = [d for d in await list_documents(res.ingestor, viewer, manageable=True) if d.source == name]
    if not docs:
        await cl.Message(content=f"There is no document named `{name}` that you can manage (see `/docs`).").send()
    elif len(docs) > 1:
        choices = [a for doc in docs for a in doc_actions(doc) if a.name.startswith(command)]
        await cl.Message(content=f"Several documents are named `{name}`; which one?", actions=choices).send()
    else:
        await run_on_document(res, viewer, command, docs[0])


async def run_on_document(res: Resources, viewer: Viewer, command: str, doc: DocumentInfo) -> None:
    if command == "delete":
        removed = await delete_document(res.ingestor, viewer, doc)
        await cl.Message(content=f"Deleted **{doc.source}** ({removed} chunks); it will no longer be cited.").send()
    else:
        result = await reindex_document(res.ingestor, viewer, doc)
        await cl.Message(content=f"Re-indexed: {result.describe()}").send()


async def manage(res: Resources, action: cl.Action) -> None:
    viewer = await current_viewer(res)
    doc: DocumentInfo = await find_manageable(res.ingestor, viewer, action.payload)  # the payload is untrusted
    await run_on_document(res, viewer, "delete" if action.name == "delete_doc" else "reindex", doc)


@cl.action_callback("delete_doc")
async def delete_doc(action: cl.Action) -> None:
    await guarded(manage, action)


@cl.action_callback("reindex_doc")
async def reindex_doc(action: cl.Action) -> None:
    await guarded(manage, action)


# --- answers -----------------------------------------------------------------------------------
def source_element(source: Source, name: str) -> Any:
    pdf = kept_file(get_settings(), source.doc_hash) if source.doc_hash else None
    if source.file_type == "pdf" and pdf is not None and pdf.exists():
        return cl.Pdf(name=name, path=str(pdf), page=source.page or 1, display="side", mime="application/pdf")
    return cl.Text(name=name, content=source.text, display="side")


def retrieve_report(trace: Trace, sources: list[Source]) -> str:
    lines = []
    for search in trace.searches:
        hits = ", ".join(
            f"{h['source']}{' p.' + str(h['page']) if h.get('page') else ''} ({h['score']})" for h in search.hits[:5]
        )
        lines.append(f"- [{search.scope}] {search.query!r} ({search.ms:.0f} ms): {hits or 'no hits'}")
    fused = "\n".join(f"{s.label}: rrf {s.rrf}, similarity {s.score}" for s in sources) or "nothing above the threshold"
    timings = ", ".join(f"{k} {v:.0f} ms" for k, v in trace.timings_ms.items())
    return (
        f"{len(trace.searches)} searches:\n" + "\n".join(lines) + f"\n\nFused ranking:\n{fused}\n\nTimings: {timings}"
    )


async def answer(res: Resources, question: str) -> None:
    viewer = await current_viewer(res)
    history: list[tuple[str, str]] = cl.user_session.get("history") or []
    options: SearchOptions | None = cl.user_session.get("options")
    msg = cl.Message(content="")
    sources: list[Source] = []
    standalone = question
    async for event in res.chain.astream(question, to_messages(history), options, viewer):
        if "token" in event:
            await msg.stream_token(event["token"])
            continue
        sources, trace = event["sources"], event["trace"]
        standalone = trace.standalone
        async with cl.Step(name="Rewrite", type="llm") as step:
            step.input = trace.standalone
            step.output = "\n".join(f"- {q}" for q in trace.rewrites)
            if trace.warnings:  # the chat model failed; the offline fallbacks were used instead
                step.output += "\n\nThe chat model failed: " + "; ".join(trace.warnings)
        async with cl.Step(name="Retrieve", type="retrieval", show_input=False) as step:
            step.output = retrieve_report(trace, sources)
    answer_id = uuid.uuid4().hex[:4]
    names = {s.number: f"{s.label} ·{answer_id}" for s in sources}
    if sources:
        msg.content += "\n\nSources: " + ", ".join(names[s.number] for s in sources)
    msg.elements = [source_element(s, names[s.number]) for s in sources]
    # Kept with the message: a thumbs-down can later be exported as an evaluation case.
    msg.metadata = {"question": standalone, "sources": [s.source for s in sources]}
    await msg.send()
    history += [("user", question), ("assistant", msg.content)]
    cl.user_session.set("history", history[-2 * get_settings().history_turns :])
    await remember(question, final=True)


async def mark_first_interaction(message: cl.Message) -> None:
    """Work around Chainlit 2.12: a first message with files but no text leaves the browser thinking the
    conversation has not started, which disables Stop and the feedback buttons for the whole session.

    Called after the upload: Chainlit's own (empty) first_interaction event must have gone out first.
    """
    if cl.user_session.get("first_interaction_seen"):
        return
    cl.user_session.set("first_interaction_seen", True)
    if not message.content.strip() and message.elements:
        names = ", ".join(str(getattr(e, "name", "")) for e in message.elements)
        interaction = {"interaction": f"Uploaded {names}"[:200], "thread_id": cl.context.session.thread_id}
        await cl.context.emitter.emit("first_interaction", interaction)


@cl.on_message
async def on_message(message: cl.Message) -> None:
    text = message.content.strip()
    if message.command == "Documents" or text.lower() in ("/docs", "/documents"):
        await guarded(show_documents)
        return
    command, _, name = text.partition(" ")
    if command.lower() in ("/delete", "/reindex") and name.strip():
        await guarded(manage_named, command.lower().lstrip("/"), name.strip())
        return
    if message.elements:
        await guarded(ingest_files, message.elements)
    await mark_first_interaction(message)
    if text:
        await guarded(answer, text)
