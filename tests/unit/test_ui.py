"""The chat's pure parts: renderers, settings from the panel, stored turns, origins and hosts, escaping."""

from __future__ import annotations

from chains import SearchOptions, Source, Trace
from chains.state import QueryHits
from core.markdown import JOINER, escape_markdown, plain_name
from core.settings import MAX_K, load_settings
from ingest.documents import DocumentInfo
from ui.origins import allowed_hosts, host_allowed, origin_allowed
from ui.render import chips, documents_list, example_question, retrieve_report, upload_summary, welcome
from ui.session import UPLOAD_MARK, apply_settings, turns_of, upload_scope

PHISH = "[Session expired - sign in again](http://evil.example/phish).md"


def source(name: str, page: int | None = None, number: int = 1, text: str = "text") -> Source:
    return Source(number, f"pk{number}", name, "", "", page, 0.5, 0.03, text)


def test_names_become_text_in_chips_and_reports() -> None:
    [first] = chips([source(PHISH, 3)], "An answer [1].")
    chip = first.label
    assert chip.startswith("[1] (Session expired") and chip.endswith(" p.3")
    assert "](" not in chip and "http://" not in chip and "http:" + JOINER + "//" in chip
    trace = Trace("q", searches=[QueryHits("q", [{"source": PHISH, "page": None, "score": 0.5}], 3.0)])
    report = retrieve_report(trace, [source(PHISH)])
    assert "\\[Session expired" in report and "http://" not in report
    assert "\\[" in upload_summary([f"{PHISH}: indexed (2 chunks)"], private=False)


def test_escaping_keeps_plain_text_readable() -> None:
    assert escape_markdown("Deploys freeze at 14:00, see GIT_DIR.") == "Deploys freeze at 14:00, see GIT_DIR."
    assert escape_markdown("![x](http://a/b.png)") == "!\\[x\\](http:" + JOINER + "//a/b.png)"
    assert escape_markdown("<img src=x>") == "\\<img src=x>"
    assert plain_name("a[b]<c>.md") == "a(b)‹c›.md"


def test_documents_list_and_welcome() -> None:
    doc = DocumentInfo(PHISH, "team", "alice", 3, "2026-12-01T08:00:00", "", "md")
    text = documents_list([doc], manageable=1, buttons=40)
    assert text.startswith("**1 documents**") and "\\[Session expired" in text and "/delete NAME" in text
    assert "None of them are yours" in documents_list([doc], manageable=0, buttons=40)
    assert welcome(0, 0, ["pdf", "md"]) == (
        "The knowledge base is empty. Attach files to a message with the paperclip to add them (pdf, md), "
        "then ask a question."
    )


def test_panel_values_are_clamped_and_scope_needs_sign_in() -> None:
    current = SearchOptions.from_settings(load_settings(milvus_uri="x.db"))
    changed = apply_settings(current, {"k": "999", "rewrites": -3, "mode": "evil", "threshold": 7, "hybrid": True})
    assert (changed.k, changed.rewrites, changed.mode, changed.threshold, changed.hybrid) == (
        MAX_K,
        0,
        "similarity",
        1.0,
        True,
    )
    assert apply_settings(current, {"k": "not a number"}) == current
    assert upload_scope({"scope": "private"}, "team", sign_in=True) == "private"
    assert upload_scope({"scope": "private"}, "team", sign_in=False) == "team"


def test_a_resumed_thread_keeps_its_turns_without_the_welcome() -> None:
    steps = [
        {"type": "assistant_message", "output": "Welcome"},
        {"type": "user_message", "output": "Q1"},
        {"type": "run", "output": ""},
        {"type": "assistant_message", "output": "A1"},
    ]
    assert turns_of(steps) == [("user", "Q1"), ("assistant", "A1")]
    # A command and what the app said to it, and an upload's summary, are not conversation.
    steps += [
        {"type": "user_message", "output": "/docs"},
        {"type": "assistant_message", "output": "Documents: a.md"},
        {"type": "user_message", "output": "Attached: a.md", "metadata": {UPLOAD_MARK: True}},
        {"type": "assistant_message", "output": "- a.md: indexed (3 chunks)", "metadata": f'{{"{UPLOAD_MARK}": true}}'},
    ]
    assert turns_of(steps) == [("user", "Q1"), ("assistant", "A1")]
    # A question sent with files: its progress message is not the answer, and the file list is not the question.
    steps += [
        {"type": "user_message", "output": "Who signs?\n\nAttached: b.md"},
        {"type": "assistant_message", "output": "- b.md: indexed (1 chunk)", "metadata": {UPLOAD_MARK: True}},
        {"type": "assistant_message", "output": "Ann signs [1]."},
    ]
    assert turns_of(steps)[2:] == [("user", "Who signs?"), ("assistant", "Ann signs [1].")]


def test_one_chip_per_cited_document_and_page_in_the_order_cited() -> None:
    sources = [
        source("debian.csv", None, 1, "row one"),
        source("bash.pdf", 40, 2),
        source("debian.csv", None, 3, "row three"),
        source("bash.pdf", 57, 4),
        source("unused.md", None, 5),
    ]
    shown = chips(sources, "Bash [4] reads rows [3] and [1], see [4] again.")
    assert [c.label for c in shown] == ["[4] bash.pdf p.57", "[3, 1] debian.csv"]
    assert [s.number for s in shown[1].sources] == [3, 1]
    assert [c.label for c in chips(sources[:2], "No citations here.")] == ["[1] debian.csv", "[2] bash.pdf p.40"]
    assert chips([], "Nothing [1].") == []


def test_example_questions_read_like_questions() -> None:
    assert example_question("Zephyr turbine manual", "zephyr.pdf", "Service > 3.2 Warranty claims") == (
        "What does Zephyr turbine manual say about Warranty claims?"
    )
    assert example_question("keys", "keys.md", "") == "What does keys.md cover?"
    assert example_question("", "debian.csv", "") == "What does debian.csv cover?"
    assert example_question("Guide", "guide.md", "Guide") == "What does Guide cover?"


def test_origins_and_hosts() -> None:
    allowed = ["http://localhost:8000"]
    assert origin_allowed(None, "127.0.0.1:8000", allowed)
    assert origin_allowed("http://127.0.0.1:8000", "127.0.0.1:8000", allowed)
    assert origin_allowed("http://localhost:8000", "127.0.0.1:9000", allowed)
    assert not origin_allowed("http://127.0.0.1:8001", "127.0.0.1:8000", allowed)
    assert not origin_allowed("null", "127.0.0.1:8000", allowed)
    assert not origin_allowed("http://127.0.0.1:99999999", "127.0.0.1:8000", allowed)
    assert origin_allowed("https://kb.example.com", "kb.example.com", allowed)
    hosts = allowed_hosts(["https://kb.example.com"], "0.0.0.0")
    assert host_allowed("kb.example.com", hosts) and host_allowed("127.0.0.1:8000", hosts)
    assert not host_allowed("evil.example:8000", hosts) and not host_allowed(None, hosts)
    assert host_allowed("anything", allowed_hosts(["*"], None))
