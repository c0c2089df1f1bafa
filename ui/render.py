"""What the chat shows, as text: citation chips, the Retrieve step, the welcome and the Documents list.
Pure functions; names and passages are escaped (core.markdown)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

from chains import Source, Trace
from core.markdown import escape_markdown, plain_name
from ingest.documents import DocumentInfo, describe
from ui.session import ATTACHED

MAX_LISTED = 200
_CITATION = re.compile(r"\[(\d{1,3})\]")


@dataclass(frozen=True)
class Chip:
    """One clickable source under an answer: a document (and page) with the passages of it that were cited."""

    label: str  # `[2] handbook.pdf p.14`, or `[1, 3] debian.csv` for two passages of one document
    sources: tuple[Source, ...]

    @property
    def first(self) -> Source:
        return self.sources[0]


def cited_numbers(text: str, known: set[int]) -> list[int]:
    """The source numbers `text` cites, in the order it first cites them."""
    seen: list[int] = []
    for match in _CITATION.finditer(text):
        number = int(match.group(1))
        if number in known and number not in seen:
            seen.append(number)
    return seen


def chips(sources: list[Source], answer: str) -> list[Chip]:
    """One chip per cited document and page, in the order the answer cites them (every source when the
    answer cites none). Names cannot turn into links or images."""
    by_number = {s.number: s for s in sources}
    order = cited_numbers(answer, set(by_number)) or [s.number for s in sources]
    groups: dict[tuple[str, int | None], list[Source]] = {}
    for number in order:
        source = by_number[number]
        groups.setdefault((source.source, source.page), []).append(source)
    result = []
    for (name, page), group in groups.items():
        numbers = ", ".join(str(s.number) for s in group)
        result.append(Chip(f"[{numbers}] {plain_name(name)}" + (f" p.{page}" if page else ""), tuple(group)))
    return result


def chip_text(chip: Chip) -> str:
    """The side panel of a text source: each cited passage under its number (escaped)."""
    if len(chip.sources) == 1:
        return escape_markdown(chip.first.text)
    return "\n\n---\n\n".join(f"**[{s.number}]** {escape_markdown(s.text)}" for s in chip.sources)


def retrieve_report(trace: Trace, sources: list[Source]) -> str:
    """The Retrieve step: every search with its best hits, the fused ranking and the timings (escaped)."""
    lines = []
    for search in trace.searches:
        hits = ", ".join(
            f"{h['source']}{' p.' + str(h['page']) if h.get('page') else ''} ({h['score']})" for h in search.hits[:5]
        )
        lines.append(f"- [{search.scope}] {search.query!r} ({search.ms:.0f} ms): {hits or 'no hits'}")
    fused = "\n".join(f"{s.label}: rrf {s.rrf}, similarity {s.score}" for s in sources) or "nothing above the threshold"
    timings = ", ".join(f"{k} {v:.0f} ms" for k, v in trace.timings_ms.items())
    report = f"{len(trace.searches)} searches:\n" + "\n".join(lines)
    return escape_markdown(report + f"\n\nFused ranking:\n{fused}\n\nTimings: {timings}")


def rewrite_report(trace: Trace) -> str:
    """The Rewrite step: the question as understood, the queries searched, and why the chat model was not
    used when it failed (escaped, as plain text)."""
    text = f"Question: {escape_markdown(trace.standalone)}\n\nSearched for:\n"
    text += "\n".join(f"- {escape_markdown(q)}" for q in trace.rewrites)
    if trace.warnings:  # the chat model failed; the offline fallbacks were used instead
        text += "\n\nThe chat model failed: " + "; ".join(trace.warnings)
    return text


def welcome(documents: int, chunks: int, kinds: list[str]) -> str:
    """The first message. It reads whole in a reopened conversation too, where example buttons are gone."""
    holds = (
        f"The knowledge base holds **{documents} documents** ({chunks} chunks) that you can search."
        if documents
        else "The knowledge base is empty."
    )
    tip = f"Attach files to a message with the paperclip to add them ({', '.join(kinds)}), then ask a question."
    return f"{holds} {tip}"


_NUMBERING = re.compile(r"^\s*(?:[\dIVXivx]+[.)]|\d+(?:\.\d+)+)\s+")


def example_question(title: str, source: str, headings: str) -> str:
    """A question a person would ask about a document, from its title and one of its headings:
    `What does the Zephyr turbine manual say about warranty claims?`."""
    name = title.strip()
    if not name or name == PurePath(source).stem:  # no real title: the file's name reads better
        name = PurePath(source).name
    heading = _NUMBERING.sub("", headings.split(" > ")[-1]).strip().rstrip(":?.")
    if heading and heading.lower() != name.lower():
        return f"What does {name} say about {heading}?"
    return f"What does {name} cover?"


def documents_list(visible: list[DocumentInfo], manageable: int, buttons: int) -> str:
    """The Documents message: one line per document, and what the buttons below it are for."""
    lines = [f"- {escape_markdown(describe(doc))}" for doc in visible[:MAX_LISTED]]
    if len(visible) > MAX_LISTED:
        lines.append(f"- … and {len(visible) - MAX_LISTED} more (`python -m ingest.manage list` shows all)")
    if not manageable:
        note = "None of them are yours to manage."
    else:
        note = "Buttons are shown for the documents you can manage"
        note += f" (the first {buttons}); " if manageable > buttons else "; "
        note += "or type `/delete NAME` or `/reindex NAME`."
    return f"**{len(visible)} documents**\n" + "\n".join(lines) + f"\n\n{note}"


def attached(names: list[str]) -> str:
    return ATTACHED + escape_markdown(", ".join(names))


def upload_progress(lines: list[str], stopped: bool = False) -> str:
    """What is being indexed, one line per file, while it runs."""
    head = (
        "Indexing stopped; the files marked indexed are stored."
        if stopped
        else (f"Indexing {len(lines)} file{'s' if len(lines) != 1 else ''}…")
    )
    return head + "\n" + "\n".join(f"- {escape_markdown(line)}" for line in lines)


def upload_summary(lines: list[str], private: bool) -> str:
    where = "visible to you only" if private else "shared with the team"
    return "\n".join(f"- {escape_markdown(line)}" for line in lines) + f"\n\nNew documents are {where}."
