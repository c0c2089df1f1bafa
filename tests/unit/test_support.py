"""The second abstention signal: a question whose rare words the documents never contain is not answered
from passages that merely clear the score floor."""

from __future__ import annotations

import random
from dataclasses import replace

from langchain_core.messages import AIMessage, HumanMessage

from chains import RagChain, SearchOptions
from chains.fusion import MIN_SUPPORT_CHUNKS, coverage, spellings_of, unsupported_words
from chains.text import acronyms
from core.settings import load_settings
from tests.fakes import MemorySearcher, chunk

MANUAL_WORDS = (
    "server client config option value default timeout port socket buffer cache index table column row query "
    "commit branch merge rebase remote fetch push tag stash log diff patch hook worktree archive backup restore "
    "replica primary standby checkpoint vacuum analyze lock transaction rollback savepoint schema role grant "
    "password user group file directory path mode owner size limit quota daemon service unit signal exit status"
)
VOCABULARY = MANUAL_WORDS.split()
TURBINE = [
    chunk("t1", "turbine.md", "The Zephyr turbine must be serviced every 1200 operating hours by an engineer.", 1),
    chunk("t2", "turbine.md", "Warranty claims for the Zephyr turbine are handled by the Orion support desk.", 2),
]
SETTINGS = load_settings(milvus_uri="unused.db", score_threshold=0.0)


def manual(chunks: int) -> MemorySearcher:
    """A technical manual of `chunks` chunks (random sentences over one vocabulary) plus the turbine pages."""
    rng = random.Random(7)
    filler = [
        chunk(f"m{i}", f"manual-{i // 20}.md", " ".join(rng.choices(VOCABULARY, k=40)) + ".", i % 20)
        for i in range(chunks - len(TURBINE))
    ]
    return MemorySearcher(filler + TURBINE)


def options(**changes: float) -> SearchOptions:
    return replace(SearchOptions.from_settings(SETTINGS), **changes)


async def test_a_question_the_documents_never_speak_of_is_refused_naming_what_they_lack() -> None:
    rag = RagChain(manual(MIN_SUPPORT_CHUNKS + 100), None, SETTINGS)
    result = await rag.ainvoke("What are the best hiking trails in Patagonia?")
    assert result.sources == []
    assert "never mention" in result.answer and "“Patagonia”" in result.answer and "“hiking”" in result.answer
    # The same passages clear the floor: with the signal off, they would be shown as an answer.
    assert (
        await rag.ainvoke(
            "What are the best hiking trails in Patagonia?", options=options(min_support=0, min_coverage=0)
        )
    ).sources


async def test_questions_in_the_documents_words_are_answered_even_with_words_they_lack() -> None:
    rag = RagChain(manual(MIN_SUPPORT_CHUNKS + 100), None, SETTINGS)
    for question in (
        "Who handles warranty claims for the Zephyr turbine?",
        "who deals with Zephyr turbine warranty claims",
    ):
        assert (await rag.ainvoke(question)).sources, question


# Every word of "How many vacation days do new employees get per year?", each on a page about something else.
SCATTERED = [
    chunk("s1", "backup.md", "The vacation mode of the daemon pauses the backup service.", 1),
    chunk("s2", "quota.md", "Many users share one group quota.", 1),
    chunk("s3", "staff.md", "The employees group owns the shared directory.", 1),
    chunk("s4", "hooks.md", "New branches start with a default hook.", 1),
    chunk("s5", "fetch.md", "Clients get the tags with each fetch.", 1),
    chunk("s6", "log.md", "The log keeps the exit status for 30 days.", 1),
    chunk("s7", "archive.md", "One archive per month is kept on the primary.", 1),
    chunk("s8", "release.md", "A release is tagged once a year.", 1),
]


async def test_a_question_whose_words_are_scattered_over_unrelated_passages_is_not_answered_from_them() -> None:
    rag = RagChain(MemorySearcher(manual(MIN_SUPPORT_CHUNKS + 100).documents + SCATTERED), None, SETTINGS)
    question = "How many vacation days do new employees get per year?"
    result = await rag.ainvoke(question)
    assert result.sources == [] and "could not find anything" in result.answer
    # The documents know every word (word support lets it through); no one passage holds enough of them.
    assert (await rag.ainvoke(question, options=options(min_coverage=0))).sources


async def test_a_follow_up_is_judged_with_the_words_it_took_from_earlier_turns() -> None:
    rag = RagChain(manual(MIN_SUPPORT_CHUNKS + 100), None, SETTINGS)
    first = "Who handles warranty claims for the Zephyr turbine?"
    answered = await rag.ainvoke(first)
    history = [HumanMessage(first), AIMessage(answered.answer)]
    follow_up = await rag.ainvoke("and how often must it be serviced?", history)
    assert follow_up.sources and follow_up.sources[0].source == "turbine.md"


def test_coverage_is_the_share_of_the_question_weight_one_passage_holds() -> None:
    weights = {"vacation": (6.0, 0), "days": (3.0, 40), "core.autocrlf": (1.0, 2)}
    assert coverage(weights, "Thirty days of vacations.") == 0.9  # by stem: "vacations" holds "vacation"
    assert coverage(weights, "Set core.autocrlf to true.") == 0.1
    assert coverage({}, "anything") == 1.0


async def test_a_small_collection_is_too_small_to_judge_words_by() -> None:
    kb = manual(MIN_SUPPORT_CHUNKS - 100)
    assert await unsupported_words(kb, "What are the best hiking trails in Patagonia?", None, 0.7) == []
    assert await unsupported_words(manual(MIN_SUPPORT_CHUNKS), "best hiking trails in Patagonia", None, 0.7)


def test_a_word_is_looked_up_as_typed_in_every_case_and_by_its_stem() -> None:
    assert spellings_of("powershell", "PowerShell")[:4] == ["PowerShell", "powershell", "Powershell", "POWERSHELL"]
    assert spellings_of("handles", "handles")[3:] == ["handl", "Handl"]  # finds "handle", "handled", "handling"
    assert spellings_of("bus", "bus") == ["bus", "Bus", "BUS"]  # no stem shorter than four letters


RELEASES = [
    chunk(
        f"u{i}",
        "ubuntu.csv",
        f"ubuntu\n\nversion: {version}; codename: {name}; release: {release}; eol: {eol}",
        i,
        file_type="csv",
    )
    for i, (version, name, release, eol) in enumerate(
        [
            ("18.04 LTS", "Bionic Beaver", "2018-04-26", "2023-05-31"),
            ("20.04 LTS", "Focal Fossa", "2020-04-23", "2025-05-29"),
            ("22.04 LTS", "Jammy Jellyfish", "2022-04-21", "2027-06-01"),
        ]
    )
]


async def test_a_row_holding_the_questions_rare_exact_term_survives_the_score_floor() -> None:
    # A floor no hit clears: only the evidence of the exact term can keep a row.
    rag = RagChain(MemorySearcher(RELEASES), None, load_settings(milvus_uri="unused.db", score_threshold=0.99))
    result = await rag.ainvoke("when does Ubuntu 20.04 reach end of life?")
    assert [s.text for s in result.sources] == [RELEASES[1].page_content]
    assert "2025-05-29" in result.answer
    # A term every row holds, or none does, is no such evidence.
    assert (await rag.ainvoke("when does Ubuntu reach end of life?")).sources == []
    assert (await rag.ainvoke("when does Ubuntu 30.04 reach end of life?")).sources == []


def test_coverage_counts_an_acronym_for_the_words_it_stands_for() -> None:
    weights = {"end": (4.0, 30), "life": (4.0, 20), "ubuntu": (2.0, 5)}
    row = "version: 22.04 LTS; codename: Jammy Jellyfish; eol: 2027-06-01"
    assert coverage(weights, "ubuntu " + row) == 0.2
    assert coverage(weights, "ubuntu " + row, acronyms("when does Ubuntu reach end of life?")) == 1.0
    assert acronyms("time to live of a DNS record") == {"ttl": frozenset({"time", "live"})}  # not "load"


async def test_a_follow_up_about_a_table_row_is_answered_from_that_row() -> None:
    # "end of life" is "eol" in the table: the follow-up's own words are in no row, yet the row answers it.
    # (Word support off: this manual never uses those words at all; real ones do, and then coverage decides.)
    rag = RagChain(MemorySearcher(manual(MIN_SUPPORT_CHUNKS + 100).documents + RELEASES), None, SETTINGS)
    first = "When was Ubuntu 22.04 released?"
    answered = await rag.ainvoke(first)
    assert "2022-04-21" in answered.answer
    history = [HumanMessage(first), AIMessage(answered.answer)]
    follow_up = await rag.ainvoke("and when does it reach end of life?", history, options(min_support=0))
    assert follow_up.sources and "2027-06-01" in follow_up.answer
    assert "22.04" in follow_up.answer.split("\n- ")[1]  # the row asked about leads
