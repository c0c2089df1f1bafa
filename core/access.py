"""Who may see and manage which chunks, as Milvus filter expressions (enforced inside every query)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.filters import all_of, field_eq

Role = Literal["admin", "member"]
Scope = Literal["team", "private"]
SCOPES: tuple[Scope, ...] = ("team", "private")
ROLES: tuple[Role, ...] = ("admin", "member")


@dataclass(frozen=True)
class Viewer:
    """The person a question or a document operation is for."""

    identifier: str
    role: Role = "member"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


# Single-user mode (no users configured): the one local user manages everything it uploads.
LOCAL = Viewer("local", "admin")
# Command-line questions without --as: team documents only.
TEAM_ONLY = Viewer("", "member")


def visible_to(viewer: Viewer) -> str:
    """Team documents, plus the viewer's own private ones. Admins see no one else's private documents."""
    team = field_eq("scope", "team")
    if not viewer.identifier:
        return team
    return f"{team} or ({all_of(field_eq('scope', 'private'), field_eq('owner', viewer.identifier))})"


def manageable_by(viewer: Viewer) -> str:
    """Documents the viewer may delete or re-index: their own; admins also every team document."""
    own = field_eq("owner", viewer.identifier) if viewer.identifier else field_eq("scope", "")  # nobody's
    if viewer.is_admin:
        return f"{field_eq('scope', 'team')} or ({own})"
    return own


def document_expr(source: str, scope: Scope, owner: str) -> str:
    """The chunks of one document. Team documents are one per name; private ones one per name and owner."""
    if scope == "team":
        expr = all_of(field_eq("scope", "team"), field_eq("source", source))
    else:
        expr = all_of(field_eq("scope", "private"), field_eq("owner", owner), field_eq("source", source))
    assert expr is not None
    return expr
