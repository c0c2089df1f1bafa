from langchain_core.documents import Document

from chains.fusion import reciprocal_rank_fusion, select
from chains.rewrite import offline_rewrites, parse_rewrites
from chains.state import Hit
from chains.text import declarative, keywords, sentences


def test_parse_rewrites_strips_numbering_bullets_quotes_and_dedupes() -> None:
    output = (
        '1. "reset vpn password"\n2) Reset VPN password\n- how to recover vpn account\n\n'
        "Here are queries:\n* vpn login help"
    )
    queries = parse_rewrites("How do I reset my VPN password?", output, 3)
    assert queries == [
        "How do I reset my VPN password?",
        "reset vpn password",
        "how to recover vpn account",
        "vpn login help",
    ]


def test_parse_rewrites_always_keeps_original_and_caps() -> None:
    assert parse_rewrites("q one", "", 3) == ["q one"]
    assert len(parse_rewrites("q", "a\nb\nc\nd\ne", 2)) == 3


def test_offline_rewrites_are_deterministic_variants() -> None:
    q = "How do I rebase a branch and squash commits?"
    first = offline_rewrites(q, 3)
    assert first == offline_rewrites(q, 3)
    assert first[0] == q
    assert "rebase a branch and squash commits" in first
    assert "rebase branch squash commits" in first
    assert len(first) <= 4
    assert offline_rewrites(q, 0) == [q]


def test_text_helpers() -> None:
    assert declarative("What is the refund policy?") == "the refund policy"
    assert keywords("What is the refund policy for the refund?") == ["refund", "policy"]
    assert sentences("One sentence here. Two here!\n\nThird") == ["One sentence here.", "Two here!", "Third"]


def _hit(i: str, score: float | None = None) -> Hit:
    return Hit(i, Document(page_content=i, metadata={"pk": i}), score)


def test_rrf_rewards_agreement_and_dedupes() -> None:
    fused = reciprocal_rank_fusion(
        [[_hit("a", 0.5), _hit("b", 0.9)], [_hit("b", 0.8), _hit("c", 0.7)], [_hit("b"), _hit("b")]]
    )
    assert [h.id for h in fused] == ["b", "a", "c"]
    b = fused[0]
    assert b.queries == [0, 1, 2]
    assert b.similarity == 0.9
    assert abs(b.rrf - (1 / 62 + 1 / 61 + 1 / 61)) < 1e-12


def test_select_applies_threshold_and_k() -> None:
    fused = reciprocal_rank_fusion([[_hit("a", 0.9), _hit("b", 0.1), _hit("c"), _hit("d", 0.5)]])
    assert [h.id for h in select(fused, 2, 0.3)] == ["a", "c"]
    assert [h.id for h in select(fused, 10, None)] == ["a", "b", "c", "d"]


def _src_hit(i: str, source: str, score: float) -> Hit:
    return Hit(i, Document(page_content=i, metadata={"pk": i, "source": source}), score)


def test_select_per_source_defers_but_never_drops() -> None:
    hits = [_src_hit("a1", "a", 0.9), _src_hit("a2", "a", 0.8), _src_hit("a3", "a", 0.7), _src_hit("b1", "b", 0.6)]
    fused = reciprocal_rank_fusion([hits])
    assert [h.id for h in select(fused, 4, None, per_source=2)] == ["a1", "a2", "b1", "a3"]
    assert [h.id for h in select(fused, 3, None, per_source=0)] == ["a1", "a2", "a3"]
    only_a = reciprocal_rank_fusion([hits[:3]])
    assert len(select(only_a, 3, None, per_source=1)) == 3


def test_document_votes_boost_every_chunk_of_a_document_once() -> None:
    chunks = [[_src_hit("a2", "a", 0.8), _src_hit("b1", "b", 0.5)], [_src_hit("a2", "a", 0.8)]]
    openings = [[_src_hit("b0", "b", 0.4), _src_hit("a0", "a", 0.3)], [_src_hit("b0", "b", 0.4)]]
    fused = {h.id: h for h in reciprocal_rank_fusion(chunks, openings)}
    assert set(fused) == {"a2", "b1", "b0", "a0"}  # openings come in as candidates
    assert abs(fused["b1"].document_rrf - (1 / 61 + 1 / 61)) < 1e-12
    assert abs(fused["b1"].rrf - (1 / 62 + 2 / 61)) < 1e-12
    assert abs(fused["b0"].rrf - 2 / 61) < 1e-12  # voted for, never counted as its own chunk hit
    assert abs(fused["a2"].rrf - (2 / 61 + 1 / 62)) < 1e-12
    assert fused["a0"].queries == []


def test_bm25_ranks_candidates_by_shared_rare_terms() -> None:
    from chains.lexical import bm25_rank

    pool = [
        _src_hit("a", "a", 0.9),
        _src_hit("b", "b", 0.8),
        _src_hit("c", "c", 0.7),
    ]
    pool[0].document.page_content = "git commit records changes to the repository"
    pool[1].document.page_content = "git am applies a series of patches from a mailbox (mbox)"
    pool[2].document.page_content = "the weather is nice"
    ranked = bm25_rank("apply a patch series received as mbox", [*pool, pool[1]])
    assert [h.id for h in ranked] == ["b"]  # shared terms only; duplicates collapse
    assert bm25_rank("", pool) == [] and bm25_rank("mbox", []) == []


def test_extractive_pick_keeps_relevant_sentences_with_their_numbers() -> None:
    from chains.extractive import candidates, pick

    found = candidates(
        [
            (
                1,
                "Title\n\nWarranty claims are handled by the Orion desk in Oslo. The sky was blue over a fjord.",
            ),
            (2, "Other\n\nServicing happens every 1200 hours by certified engineers on site."),
        ]
    )
    assert [c.number for c in found] == [1, 1, 2]
    # vectors: the first sentence matches the question, the others are far from it
    vectors = [[1.0, 0.0], [0.0, 1.0], [0.3, 0.95]]
    chosen = pick("who handles warranty claims", found, vectors, [1.0, 0.0])
    assert [c.text for c in chosen] == ["Warranty claims are handled by the Orion desk in Oslo."]


def test_sentences_unwrap_prose_but_keep_structured_lines() -> None:
    wrapped = (
        "You might look for the first commit in which the file\nnames were all converted to the naming stan-\ndard. "
        "Next one."
    )
    assert sentences(wrapped) == [
        "You might look for the first commit in which the file names were all converted to the naming standard.",
        "Next one.",
    ]
    meta = "Summary: An integration package connecting Milvus and LangChain\nLicense: MIT\nRequires-Python: >=3.10"
    assert sentences(meta) == [
        "Summary: An integration package connecting Milvus and LangChain",
        "License: MIT",
        "Requires-Python: >=3.10",
    ]
    assert sentences("Steps:\n- first do this\n- then that") == ["Steps:", "- first do this", "- then that"]


def test_extracted_sentences_cannot_break_the_markdown_list() -> None:
    from chains.extractive import as_list_item

    assert as_list_item("# run project specific test") == "\\# run project specific test"
    assert as_list_item("• Automatically bisect a broken test case:") == "Automatically bisect a broken test case:"
    assert as_list_item("- 2. nested marker") == "nested marker"
    assert as_list_item("```bash pip install x```") == "bash pip install x"
    assert as_list_item("> quoted") == "\\> quoted"


async def test_sentence_vectors_embed_each_sentence_once_across_answers() -> None:
    from chains.extractive import SentenceVectors, extractive_answer
    from tests.fakes import HashEmbeddings

    class Counting(HashEmbeddings):
        def __init__(self) -> None:
            self.embedded: list[str] = []

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            self.embedded += texts
            return super().embed_documents(texts)

    model = Counting()
    vectors = SentenceVectors(model, size=3)
    sources = [(1, "Manual\n\nWarranty claims are handled by the Orion desk in Oslo. Servicing is every 1200 hours.")]
    first = "".join([t async for t in extractive_answer("who handles warranty claims", sources, vectors)])
    second = "".join([t async for t in extractive_answer("who handles warranty claims", sources, vectors)])
    assert first == second and "Orion desk" in first
    assert len(model.embedded) == 2  # the two sentences, once; the second answer embedded nothing
    await vectors.of(["one more sentence here", "and another one", "and a third one"])
    assert len(vectors._vectors) == 3  # bounded: the oldest are forgotten


def test_the_offline_rewrite_drops_whole_lead_words_only() -> None:
    from chains.text import declarative

    assert declarative("When does Debian 11 reach end of life?") == "Debian 11 reach end of life"
    assert declarative("How does it work?") == "it work"
    assert declarative("whatever happened?") == "whatever happened"


async def test_a_full_text_hit_the_dense_index_misses_is_measured_not_dropped() -> None:
    from chains.fusion import measure
    from chains.state import FusedHit
    from tests.fakes import MemorySearcher, chunk

    class Blind(MemorySearcher):
        async def search_dense(self, query: str, k: int, expr: str | None) -> list:
            return []  # an approximate index that finds nothing within the filter

    doc = chunk("r1", "rare.md", "The error code ZX-4471 means the coolant valve is stuck.")
    searcher = Blind([doc])
    hit = FusedHit("r1", doc, 0.01, None)
    await measure(searcher, [hit], "what does error ZX-4471 mean", None)
    assert hit.similarity is not None and hit.similarity > 0.2


async def test_an_extracted_sentence_comes_with_its_neighbours_and_a_table_row_alone() -> None:
    from chains.extractive import Candidate, SentenceVectors, extractive_answer, in_context
    from tests.fakes import HashEmbeddings

    parts = [
        "The shared_buffers setting sizes the cache.",
        "It is set in postgresql.conf by the administrator.",
        "The default is 128 megabytes on most systems.",
        "Restart the server after changing it.",
        "Unrelated closing remarks about logging go here.",
    ]
    chosen = [Candidate(1, 1, parts[1]), Candidate(1, 2, parts[2]), Candidate(2, 0, "A short note.")]
    passages = in_context(chosen, {1: parts})
    # Two chosen sentences of one chunk become one passage from the sentence before the first to the one
    # after the last; a source without its sentences (a table row, a chunk quoted whole) is shown alone.
    assert passages == [(1, " ".join(parts[0:4])), (2, "A short note.")]

    text = "Settings\n\n" + " ".join(parts)
    vectors = SentenceVectors(HashEmbeddings())
    answer = "".join(
        [t async for t in extractive_answer("who sets it in postgresql.conf administrator", [(1, text)], vectors)]
    )
    assert "postgresql.conf by the administrator. The default is 128 megabytes" in answer, answer  # the next one
    assert "sizes the cache. It is set" in answer  # and the one before
    rows = (
        "debian.csv\n\nversion: 11; codename: Bullseye\nversion: 12; codename: Bookworm\nversion: 13; codename: Trixie"
    )
    alone = "".join([t async for t in extractive_answer("codename of version 12", [(1, rows)], vectors, tables={1})])
    bullets = [line for line in alone.splitlines() if line.startswith("- ")]
    assert bullets and all(line.count("codename:") == 1 for line in bullets), alone  # each row alone
    assert "Bookworm" in bullets[0]


def test_offline_sentences_match_inflections_and_short_options_and_a_shared_sentence_shows_once() -> None:
    from chains.extractive import Candidate, in_context, pick

    def chosen_texts(question: str, texts: list[str], sims: list[float]) -> list[str]:
        found = [Candidate(n, 0, t) for n, t in enumerate(texts, start=1)]
        vectors = [[s, (1 - s * s) ** 0.5] for s in sims]
        return [c.text for c in pick(question, found, vectors, [1.0, 0.0])]

    # "stand" finds "stands": the sentence that answers beats a closer-sounding one without the word.
    stands, drives = "It stands for tape archiver, says the manual.", "Tape drives are slow devices indeed."
    assert chosen_texts("what does it stand for", [drives, stands], [0.5, 0.3])[0] == stands
    # A short option is a term of its own (word tokens drop "-j").
    j, z = "-j, --bzip2 filter the archive through bzip2.", "-z, --gzip filter the archive through gzip."
    assert chosen_texts("what does -j do", [z, j], [0.5, 0.5])[0] == j
    # Two pages with the same sentence (a command and its alias): shown once, the slot goes to another.
    same, other = "Annotates each line of the file with its revision.", "Shows the author of each line too."
    assert chosen_texts("who changed each line", [same, same, other], [0.9, 0.9, 0.8]) == [same, other]
    shared = [Candidate(1, 0, same), Candidate(2, 0, same), Candidate(3, 0, other)]
    assert [
        c.also for c in pick("who changed each line", shared, [[0.9, 0.4], [0.9, 0.4], [0.8, 0.6]], [1.0, 0.0])
    ] == [
        (2,),
        (),
    ]  # both pages are cited for it

    parts = [f"Sentence number {i} of the option's description." for i in range(6)]
    # The best sentence keeps two sentences after it (a definition's default, its unit), the others one.
    passages = in_context([Candidate(1, 1, parts[1]), Candidate(2, 1, parts[1])], {1: parts, 2: parts})
    assert passages == [(1, " ".join(parts[0:4])), (2, " ".join(parts[0:3]))]


def test_a_follow_ups_keyword_query_holds_its_words_and_the_earlier_ones_not_the_mark() -> None:
    from langchain_core.messages import AIMessage, HumanMessage

    from chains.condense import offline_condense

    history = [HumanMessage("When did Debian 11 come out?"), AIMessage("2021-08-14 [1]")]
    standalone = offline_condense("and when does it reach end of life?", history)
    assert "Debian 11" in standalone
    assert offline_rewrites(standalone, 1)[1] == "reach end life debian 11 come"  # no "context"


def test_what_the_best_sentence_lacks_of_the_question_is_looked_for_a_few_sentences_later() -> None:
    from chains.extractive import Candidate, in_context
    from chains.text import stems_of

    parts = [
        "max_wal_size (integer) Maximum size to let the WAL grow during automatic checkpoints.",
        "This is a soft limit; WAL size can exceed it under heavy load.",
        "Increasing it can increase the time needed for crash recovery.",
        "If this value is specified without units, it is taken as megabytes.",
        "The default is 1 GB.",
        "This parameter can only be set in the postgresql.conf file.",
    ]
    best = [Candidate(1, 0, parts[0])]
    wanted = stems_of("What's the default max_wal_size?")
    assert in_context(best, {1: parts}, wanted=wanted) == [(1, " ".join(parts[:3])), (1, "The default is 1 GB.")]
    assert in_context(best, {1: parts}) == [(1, " ".join(parts[:3]))]
    # What the best sentence or the sentences shown after it already hold is not looked for again.
    assert in_context(best, {1: parts}, wanted=stems_of("max_wal_size crash recovery")) == [(1, " ".join(parts[:3]))]
