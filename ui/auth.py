"""Who is signed in: the start-up plan, Chainlit users from our user list, the viewer of a session."""

from __future__ import annotations

import sys
from collections.abc import Callable

import chainlit as cl

from core.access import LOCAL, Viewer
from core.auth import AuthPlan, plan_auth
from core.errors import KnowledgeBaseError
from core.settings import Settings
from core.users import UserRecord
from ui.resources import Resources


def plan_or_exit(settings: Callable[[], Settings]) -> AuthPlan:
    """The sign-in plan; a plain `Cannot start: ...` and exit 2 when the settings are invalid or sign-in is
    impossible."""
    try:
        return plan_auth(settings())
    except KnowledgeBaseError as exc:
        print(f"Cannot start: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


def chainlit_user(record: UserRecord) -> cl.User:
    return cl.User(identifier=record.identifier, metadata={"role": record.role})


async def password_user(res: Resources, username: str, password: str) -> cl.User | None:
    record = await res.users.verify(username, password)  # throttled in ui.limits
    return chainlit_user(record) if record else None


async def sso_user(res: Resources, identifier: str) -> cl.User | None:
    """A user vouched for by OAuth or the SSO header: known users keep their role; others per settings."""
    record = await res.users.get(identifier)
    if record is None and res.settings.auth_auto_signup:
        record = await res.users.add(identifier, None, "member")
    return chainlit_user(record) if record else None


async def current_viewer(res: Resources, user: cl.User | None) -> Viewer:
    """Who this session is for, checked against the user list on every use (removed users lose access)."""
    if not res.sign_in:
        return LOCAL
    record = await res.users.get(user.identifier) if user else None
    if record is None:
        raise KnowledgeBaseError("Your account is no longer on this deployment's user list. Please sign in again.")
    return record.viewer
