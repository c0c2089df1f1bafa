"""A shortened soak in CI: simulated users over Chainlit's socket protocol against the real app."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.load.soak import soak


def test_users_mixing_questions_and_uploads_lose_nothing(tmp_path: Path) -> None:
    users = int(os.environ.get("SOAK_USERS", "8"))
    seconds = float(os.environ.get("SOAK_SECONDS", "20"))
    report = soak(users, seconds, tmp_path)
    print("\nsoak:", json.dumps(report))
    assert report["unhandled_errors"] == 0, report["error_samples"]
    assert report["lost_documents"] == 0
    assert report["questions"] >= users and report["uploads_indexed"] >= 1
