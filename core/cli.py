"""The edge of every command line: run the command, turn our errors into one plain line."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from core.errors import KnowledgeBaseError


def run_plainly(command: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run `command` to its exit code; a KnowledgeBaseError prints `Error: ...` and exits 1."""
    try:
        return asyncio.run(command())
    except KnowledgeBaseError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
