"""Milvus filter expressions built safely: every value escaped, every field name checked."""

from __future__ import annotations

import re
from collections.abc import Iterable

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": ""}


def quote(value: str) -> str:
    """A Milvus string literal that always means exactly `value`."""
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in value) + '"'


def field_eq(field: str, value: str | int) -> str:
    """`field == value`, with the field name checked and the value escaped."""
    if not IDENTIFIER.match(field):
        raise ValueError(f"not a field name: {field!r}")
    literal = str(int(value)) if isinstance(value, int) else quote(value)
    return f"{field} == {literal}"


def field_in(field: str, values: Iterable[str]) -> str:
    """`field in [...]`, every value escaped."""
    if not IDENTIFIER.match(field):
        raise ValueError(f"not a field name: {field!r}")
    return f"{field} in [{', '.join(quote(v) for v in values)}]"


def all_of(*exprs: str | None) -> str | None:
    """Join filter expressions with `and` (None when there are none)."""
    parts = [f"({e})" for e in exprs if e]
    return " and ".join(parts) or None
