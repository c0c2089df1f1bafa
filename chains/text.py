"""Small text utilities shared by the offline rewriter, condenser and extractive answerer."""

from __future__ import annotations

import re

WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+#/-]*[A-Za-z0-9+#]|[A-Za-z0-9]")
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "aren't",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "can't",
        "cannot",
        "could",
        "couldn't",
        "did",
        "didn't",
        "do",
        "does",
        "doesn't",
        "doing",
        "don't",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "hadn't",
        "has",
        "hasn't",
        "have",
        "haven't",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "i'm",
        "if",
        "in",
        "into",
        "is",
        "isn't",
        "it",
        "it's",
        "its",
        "itself",
        "let's",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "ought",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "shouldn't",
        "so",
        "some",
        "such",
        "than",
        "that",
        "that's",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "there's",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "wasn't",
        "we",
        "were",
        "weren't",
        "what",
        "what's",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "with",
        "won't",
        "would",
        "wouldn't",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "please",
        "tell",
        "explain",
        "want",
        "need",
        "way",
        "ways",
        "know",
        "thing",
        "things",
        "anything",
        "something",
        "get",
        "got",
        "use",
        "using",
        "used",
        "does",
        "also",
        "just",
    ]
)
QUESTION_LEAD = re.compile(
    r"^\s*(?:(?:please\s+)?(?:can|could|would|will|should|do|does|did|is|are|was|were)\s+"
    r"(?:you|i|we|one|it|there)\s+(?:please\s+)?|how\s+(?:do|does|can|could|should|would|to)\s+(?:i|we|you|one)?\s*|"
    r"what(?:'s|\s+is|\s+are|\s+does|\s+do)?\s+|why\s+(?:is|are|does|do|did)?\s*|when\s+(?:should|do|does|is)?\s*"
    r"(?:i|we|you)?\s*|where\s+(?:is|are|do|does|can)?\s*(?:i|we|you)?\s*|which\s+|who\s+|is\s+there\s+(?:a|an|any)?\s*"
    r"(?:way\s+to\s+)?)",
    re.IGNORECASE,
)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
LIST_MARKER = r"(?:[-*+•‣◦]|\d+[.)])\s+"  # a bullet or a number opening a list item
BULLET_START = re.compile(r"^\s*" + LIST_MARKER)
LEADING_MARKERS = re.compile(r"^\s*(?:" + LIST_MARKER + ")+")
KEY_VALUE = re.compile(r"^[\w][\w .()/-]{0,40}:\s")


def words(text: str) -> list[str]:
    """Lower-cased word tokens; a hyphenated compound also yields its parts (`requires-python`)."""
    tokens: list[str] = []
    for w in WORD.findall(text):
        w = w.lower()
        tokens.append(w)
        if "-" in w or "_" in w:
            tokens += [p for p in re.split(r"[-_]+", w) if p]
    return tokens


def keywords(text: str) -> list[str]:
    """Content words in order, without duplicates or stopwords."""
    seen: dict[str, None] = {}
    for w in words(text):
        if w not in STOPWORDS and len(w) > 1:
            seen.setdefault(w, None)
    return list(seen)


def declarative(question: str) -> str:
    """Drop the interrogative lead and the question mark: 'How do I undo X?' -> 'undo X'."""
    return QUESTION_LEAD.sub("", question.strip(), count=1).rstrip(" ?!.").strip()


def lines_to_units(text: str) -> list[str]:
    """Paragraphs, list items and short structured lines; hard-wrapped prose lines are joined again."""
    units: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        current = ""
        for line in block.splitlines():
            line = line.strip()
            if not line:
                continue
            continues = (
                current
                and not BULLET_START.match(line)
                and not KEY_VALUE.match(line)
                and not current.endswith((".", "!", "?", ":", ";"))
                and (line[0].islower() or current.endswith(("-", ",")) or len(current) > 60)
            )
            if continues:
                current = current[:-1] + line if current.endswith("-") and line[0].islower() else f"{current} {line}"
            else:
                if current:
                    units.append(current)
                current = line
        if current:
            units.append(current)
    return units


def sentences(text: str) -> list[str]:
    """Split a passage into sentences, list items and structured lines."""
    found = []
    for unit in lines_to_units(text):
        found += [re.sub(r"\s+", " ", p).strip() for p in SENTENCE_END.split(unit) if p.strip()]
    return found
