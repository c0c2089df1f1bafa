"""Access rules as filter expressions: who sees and who manages what."""

from __future__ import annotations

import pytest

from core.access import LOCAL, TEAM_ONLY, Viewer, document_expr, manageable_by, visible_to
from core.users import UserError, normalize_identifier


def test_visibility_is_team_plus_own_private_documents() -> None:
    assert visible_to(TEAM_ONLY) == 'scope == "team"'
    assert visible_to(Viewer("alice")) == 'scope == "team" or ((scope == "private") and (owner == "alice"))'
    # Admins see no one else's private documents: the same rule as everyone.
    assert visible_to(Viewer("root", "admin")) == visible_to(Viewer("root"))


def test_hostile_identifiers_stay_inside_their_string_literal() -> None:
    expr = visible_to(Viewer('x" or scope == "private'))
    assert expr.endswith('(owner == "x\\" or scope == \\"private"))')
    assert manageable_by(Viewer("a\\")) == 'owner == "a\\\\"'


def test_members_manage_their_own_documents_and_admins_every_team_document() -> None:
    assert manageable_by(Viewer("bob")) == 'owner == "bob"'
    assert manageable_by(Viewer("root", "admin")) == 'scope == "team" or (owner == "root")'
    assert manageable_by(TEAM_ONLY) == 'scope == ""'  # nobody's documents
    assert manageable_by(LOCAL).startswith('scope == "team"')


def test_a_document_is_one_per_name_in_the_team_and_per_name_and_owner_when_private() -> None:
    assert document_expr("a.pdf", "team", "alice") == '(scope == "team") and (source == "a.pdf")'
    assert document_expr("a.pdf", "private", "alice") == (
        '(scope == "private") and (owner == "alice") and (source == "a.pdf")'
    )


@pytest.mark.parametrize("name", ["", "   ", "a b", "tab\there", "x" * 129, "nul\0"])
def test_user_names_are_refused_when_unusable(name: str) -> None:
    with pytest.raises(UserError):
        normalize_identifier(name)


def test_user_names_are_normalised() -> None:
    assert normalize_identifier("  Alice@Example.COM ") == "alice@example.com"
    assert normalize_identifier("Jose\u0301") == "jos\u00e9"  # one person, whichever way the é was typed
