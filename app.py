"""Chainlit handlers: adapt chat events to `ingest/` and `chains/`; no business logic here."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import chainlit as cl
from chainlit.input_widget import Select, Slider

from chains import RagChain, SearchOptions, Source, Trace, to_messages
from core.errors import KnowledgeBaseError
from core.models import make_chat_model
from core.runtime import open_knowledge_base
from core.settings import get_settings
from ingest import SUPPORTED, FileInput, FileResult, Ingestor

log = logging.getLogger(__name__)


class Resources:
    """Built once per process at start-up, shared by every session."""

    # A plain class: Chainlit loads app.py outside sys.modules, which dataclasses cannot handle.
    def __init__(self, chain: RagChain, ingestor: Ingestor) -> None:
        self.chain = chain
        self.ingestor = ingestor
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
                        res = Resources(RagChain(kb, make_chat_model(settings), settings), Ingestor(kb))
                        ready.set_result(res)
                        await res.close.wait()
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


async def report_error(exc: BaseException) -> None:
    if isinstance(exc, KnowledgeBaseError):
        text = str(exc)
    else:
        log.exception("unexpected error", exc_info=exc)
        text = "Something went wrong on our side while handling this message. Please try again."
    await cl.ErrorMessage(content=text).send()


# --- session start -----------------------------------------------------------------------------
def settings_widgets(options: SearchOptions) -> list[Any]:
    return [
        Slider(id="k", label="Sources per answer (k)", initial=options.k, min=1, max=20, step=1),
        Select(id="mode", label="Search mode", values=["similarity", "mmr"], initial_value=options.mode),
        Slider(id="rewrites", label="Query rewrites", initial=options.rewrites, min=0, max=8, step=1),
        Slider(
            id="threshold", label="Score threshold (cosine)", initial=options.threshold or 0.0, min=-1, max=1, step=0.05
        ),
    ]


async def example_questions(res: Resources, limit: int = 3) -> list[cl.Action]:
    """One example question per document (by title), offered as buttons on the welcome message."""
    rows = await res.chain.kb.query("chunk == 0", ["title", "source"], limit=limit)
    questions = [f"What is {row.get('title') or row.get('source')} about?" for row in rows]
    return [cl.Action(name="ask", payload={"question": q}, label=q, icon="message-circle") for q in questions]


@cl.action_callback("ask")
async def ask_example(action: cl.Action) -> None:
    question = str(action.payload.get("question", ""))[:500].strip()  # payloads come from the client
    if not question:
        return
    await cl.Message(content=question, type="user_message").send()
    try:
        await answer(await resources(), question)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        await report_error(exc)


@cl.on_chat_start
async def start() -> None:
    cl.user_session.set("history", [])
    try:
        res = await resources()
        options = SearchOptions.from_settings(res.chain.settings)
        cl.user_session.set("options", options)
        await cl.ChatSettings(settings_widgets(options)).send()
        documents, chunks = await res.chain.kb.summary()
        examples = await example_questions(res) if documents else []
    except Exception as exc:
        await report_error(exc)
        return
    holds = (
        f"The knowledge base holds **{documents} documents** ({chunks} chunks)."
        if documents
        else "The knowledge base is empty."
    )
    kinds = ", ".join(ext.lstrip(".") for ext in SUPPORTED)
    tip = f"Attach files to a message with the paperclip to add them ({kinds}), then ask a question."
    if examples:
        tip += " Or try one of these:"
    await cl.Message(content=f"{holds} {tip}", actions=examples).send()


@cl.on_settings_update
async def update_settings(values: dict[str, Any]) -> None:
    current: SearchOptions = cl.user_session.get("options") or SearchOptions.from_settings(get_settings())
    try:
        updated = replace(
            current,
            k=int(values.get("k", current.k)),
            rewrites=int(values.get("rewrites", current.rewrites)),
            mode=values.get("mode", current.mode),
            threshold=float(values.get("threshold", current.threshold or 0.0)),
        ).clamped()  # values come from the client: never trust them
    except (TypeError, ValueError):
        updated = current
    cl.user_session.set("options", updated)


# --- uploads -----------------------------------------------------------------------------------
def kept_pdf(doc_hash: str) -> Path:
    """Where an indexed PDF is kept, by the hash of its content."""
    return Path(get_settings().files_dir) / f"{doc_hash}.pdf"


def keep_pdf(path: Path, result: FileResult) -> None:
    """Keep indexed PDFs so citations can open them at the cited page after the session ends."""
    if result.status != "failed" and result.doc_hash and path.suffix.lower() == ".pdf":
        target = kept_pdf(result.doc_hash)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


async def ingest_files(res: Resources, elements: list[Any]) -> None:
    files = [FileInput(Path(e.path), e.name) for e in elements if getattr(e, "path", None)]
    if not files:
        return
    by_source = {f.source: f.path for f in files}
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
            await asyncio.to_thread(keep_pdf, by_source[result.source], result)

        results = await res.ingestor.ingest(files, on_result=progress)
    await cl.Message(content="\n".join(f"- {r.describe()}" for r in results)).send()


# --- answers -----------------------------------------------------------------------------------
def source_element(source: Source, name: str) -> Any:
    pdf = kept_pdf(source.doc_hash)
    if source.file_type == "pdf" and source.doc_hash and pdf.exists():
        return cl.Pdf(name=name, path=str(pdf), page=source.page or 1, display="side")
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
    history: list[tuple[str, str]] = cl.user_session.get("history") or []
    options: SearchOptions | None = cl.user_session.get("options")
    msg = cl.Message(content="")
    sources: list[Source] = []
    async for event in res.chain.astream(question, to_messages(history), options):
        if "token" in event:
            await msg.stream_token(event["token"])
            continue
        sources, trace = event["sources"], event["trace"]
        async with cl.Step(name="Rewrite", type="llm") as step:
            step.input = trace.standalone
            step.output = "\n".join(f"- {q}" for q in trace.rewrites)
        async with cl.Step(name="Retrieve", type="retrieval", show_input=False) as step:
            step.output = retrieve_report(trace, sources)
    answer_id = uuid.uuid4().hex[:4]
    names = {s.number: f"{s.label} ·{answer_id}" for s in sources}
    if sources:
        msg.content += "\n\nSources: " + ", ".join(names[s.number] for s in sources)
    msg.elements = [source_element(s, names[s.number]) for s in sources]
    await msg.send()
    history += [("user", question), ("assistant", msg.content)]
    cl.user_session.set("history", history[-2 * get_settings().history_turns :])


@cl.on_message
async def on_message(message: cl.Message) -> None:
    try:
        res = await resources()
        if message.elements:
            await ingest_files(res, message.elements)
        if message.content.strip():
            await answer(res, message.content.strip())
    except asyncio.CancelledError:
        raise  # the user pressed Stop: Chainlit ends the message
    except Exception as exc:
        await report_error(exc)
