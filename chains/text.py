"""Small text utilities shared by the offline rewriter, condenser and extractive answerer."""

from __future__ import annotations

import re

from core.stopwords import STOP_WORDS

WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+#/-]*[A-Za-z0-9+#]|[A-Za-z0-9]")
STOPWORDS = frozenset(STOP_WORDS)
# Every word of a lead ends at a word boundary: "When does X" must not leave "es X" behind.
QUESTION_LEAD = re.compile(
    r"^\s*(?:(?:please\s+)?(?:can|could|would|will|should|does|do|did|is|are|was|were)\s+"
    r"(?:you|i|we|one|it|there)\s+(?:please\s+)?|how\s+(?:does|do|can|could|should|would|to)\s+(?:(?:i|we|you|one)\b)?\s*|"
    r"what(?:'s|\s+is|\s+are|\s+does|\s+do)?\b\s*|why\b\s*(?:(?:is|are|does|do|did)\b)?\s*|"
    r"when\b\s*(?:(?:should|does|do|is)\b)?\s*(?:(?:i|we|you)\b)?\s*|"
    r"where\b\s*(?:(?:is|are|does|do|can)\b)?\s*(?:(?:i|we|you)\b)?\s*|which\s+|who\s+|"
    r"is\s+there\s+(?:(?:a|an|any)\b)?\s*(?:way\s+to\s+)?)",
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


NAME_LIKE = re.compile(r"[a-z0-9][A-Z]|_|[A-Za-z]{2}\.[A-Za-z]{2}|^[A-Z]{2,}[a-z]?$")


def names(text: str) -> list[str]:
    """The words of a question that name something exactly: identifiers (`innodb_buffer_pool_size`,
    `core.autocrlf`), CamelCase names (`PowerShell`, `pgAdmin`) and acronyms (`SGA`)."""
    found = [w.strip(".,;:!?()\"'`") for w in text.split()]
    return list(dict.fromkeys(w for w in found if len(w) >= 3 and NAME_LIKE.search(w) and w.lower() not in STOPWORDS))


VERSION = re.compile(r"(?<![\w.])\d+(?:\.\d+)+(?![\w]|\.\w)")


def exact_terms(text: str) -> list[str]:
    """The words that name one thing exactly: `names`, and version numbers ("20.04", "9.6")."""
    return list(dict.fromkeys([*names(text), *VERSION.findall(text)]))


INFLECTIONS = ("ing", "ies", "es", "ed", "s")
SHORT_OPTION = re.compile(r"(?<![\w-])-[A-Za-z0-9]\b")


def without_inflection(word: str) -> str:
    """`word` without its first common inflection that leaves 4 letters ("handles" -> "handl")."""
    for end in INFLECTIONS:
        if word.endswith(end) and len(word) - len(end) >= 4:
            return word[: -len(end)]
    return word


def stem(word: str) -> str:
    """A crude stem, equal for a word's common inflections ("handles", "handled", "handle" -> "handl")."""
    word = without_inflection(word)
    return word[:-1] if word.endswith("e") and len(word) > 4 else word


def short_options(text: str) -> set[str]:
    """Single-letter command-line options (`-j`): `keywords` drops them, yet they name exactly what is asked."""
    return set(SHORT_OPTION.findall(text))


def keywords(text: str) -> list[str]:
    """Content words in order, without duplicates or stopwords."""
    seen: dict[str, None] = {}
    for w in words(text):
        if w not in STOPWORDS and len(w) > 1:
            seen.setdefault(w, None)
    return list(seen)


def stems_of(text: str) -> set[str]:
    """A text's content words by stem, and its short options (`-j`)."""
    return {stem(w) for w in keywords(text)} | short_options(text)


PHRASE_WORD = re.compile(r"[A-Za-z]+")


def acronyms(text: str) -> dict[str, frozenset[str]]:
    """The acronyms a text's phrases of 2-4 words could be written as, each with the stems it stands for:
    "end of life" -> "eol" (and "el"), "write-ahead log" -> "wal", "long term support" -> "lts". Documents,
    tables above all, write the short form ("eol: 2024-08-14") where people ask in words. Only forms of 3+
    letters count, from phrases that start and end with a content word and hold at most one small word."""
    found: dict[str, set[str]] = {}
    for clause in re.split(r"[^\w\s'-]+", text):  # a phrase does not run over punctuation
        _phrase_acronyms([w.lower() for w in PHRASE_WORD.findall(clause)], found)
    return {form: frozenset(stems) for form, stems in found.items()}


def _phrase_acronyms(tokens: list[str], found: dict[str, set[str]]) -> None:
    for i, first in enumerate(tokens):
        if first in STOPWORDS:
            continue
        for length in range(2, 5):
            run = tokens[i : i + length]
            if len(run) < length or run[-1] in STOPWORDS:
                continue
            content = [w for w in run if w not in STOPWORDS]
            forms = {"".join(w[0] for w in content)}
            if len(run) - len(content) == 1:  # "end of life" -> "eol"; two small words make a word ("load")
                forms.add("".join(w[0] for w in run))
            for form in forms:
                if len(form) >= 3:
                    found.setdefault(form, set()).update(stem(w) for w in content)


def spelled_out(passage_words: set[str], asked: dict[str, frozenset[str]]) -> set[str]:
    """The stems of the asked phrases whose acronym (see `acronyms`) is one of the passage's `words`."""
    return set().union(*(stems for form, stems in asked.items() if form in passage_words)) if asked else set()


CONTEXT_MARK = " (context: "


def with_context(question: str, earlier: str) -> str:
    """An offline follow-up made standalone: the question, then the earlier turn's terms, marked as such."""
    return f"{question.strip()}{CONTEXT_MARK}{earlier})"


def asked_words(standalone: str) -> str:
    """A standalone question's own and earlier words, without the word of the mark `with_context` adds."""
    return standalone.replace(CONTEXT_MARK, " (")


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
