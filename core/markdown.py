"""Text from documents, names and people shown in Markdown as the text it is: no links, images or HTML."""

from __future__ import annotations

import re

# Backslash-escaped: what opens a link or an image ([ and ![), raw HTML and <autolinks> (<), and the escape itself.
JOINER = "\u2060"  # shows as nothing, but no bare link is recognised across it
_ACTIVE = re.compile(r"([\\\[\]<])")
# Bare addresses that GitHub-flavoured Markdown turns into links on its own: scheme://, www., e-mail.
_AUTOLINK = re.compile(r"(?i)\b([a-z][a-z0-9+.-]{1,20}):(?=//)|\b(www)\.|(?<=\w)@(?=\w)")


def escape_markdown(text: str) -> str:
    """`text` rendered literally by Chainlit's Markdown; plain words, punctuation and emphasis stay readable."""
    escaped = _ACTIVE.sub(r"\\\1", text)
    return _AUTOLINK.sub(_break_autolink, escaped)


def _break_autolink(match: re.Match[str]) -> str:
    # An invisible word joiner: Chainlit's renderer finds bare links in the text after escapes are resolved.
    if match.group(1):
        return match.group(1) + ":" + JOINER
    if match.group(2):
        return match.group(2) + JOINER + "."
    return JOINER + "@"


_LOOKALIKES = str.maketrans("[]<>\\`", "()‹›/'")


def plain_name(name: str) -> str:
    """A file name fit to stand inside a link's text (citation chips), where escapes cannot be used."""
    return _AUTOLINK.sub(_break_autolink, name.translate(_LOOKALIKES))
