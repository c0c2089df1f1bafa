"""Feedback to evaluation cases: thumbs-down answers become questions to fix, thumbs-up ones regression tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.database import json_object

# The rated step is the answer itself, or (with Chainlit's chain-of-thought display) the run that holds it.
QUERY = """
SELECT f."id", f."value", f."comment", s."metadata", s."output", t."userIdentifier", s."createdAt"
FROM feedbacks f
JOIN steps s ON s."type" = 'assistant_message' AND (s."id" = f."forId" OR s."parentId" = f."forId")
LEFT JOIN threads t ON t."id" = f."threadId"
ORDER BY s."createdAt"
"""


async def feedback_cases(engine: AsyncEngine, include_positive: bool = False) -> list[dict[str, Any]]:
    """One `chains eval` case per rated answer.

    A thumbs-down case has no expected sources yet ("sources": []): the answer's citations were wrong or
    missing, so someone names the right documents before it counts. A thumbs-up case expects what was cited.
    """
    async with engine.connect() as conn:
        rows = (await conn.execute(text(QUERY))).all()
    answers: dict[str, dict[str, Any]] = {}
    for feedback_id, value, comment, raw_meta, output, user, created in rows:
        meta = json_object(raw_meta)
        question = str(meta.get("question") or "").strip()
        cited = [str(s) for s in meta.get("sources") or []]
        if not question or (int(value) != 0 and not include_positive):
            continue
        positive = int(value) != 0
        answers[str(feedback_id)] = (  # the last answer of a rated run wins
            {
                "question": question,
                "sources": sorted(set(cited)) if positive else [],
                "feedback": "up" if positive else "down",
                "comment": comment or "",
                "cited": cited,
                "answer": (output or "")[:2000],
                "user": user or "",
                "asked_at": created or "",
            }
        )
    return sorted(answers.values(), key=lambda c: str(c["asked_at"]))
