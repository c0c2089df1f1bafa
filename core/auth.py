"""Whether the app runs single-user or with sign-in, decided once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from core.database import describe, open_database, run_sync
from core.errors import SettingsError
from core.settings import Settings
from core.users import UserStore


@dataclass(frozen=True)
class AuthPlan:
    """Which sign-in methods are on. With none, the app is single-user and keeps no history."""

    users: int
    password: bool
    header: str
    oauth: bool

    @property
    def enabled(self) -> bool:
        return self.password or bool(self.header) or self.oauth


def oauth_configured() -> bool:
    """Whether Chainlit found an OAuth provider's variables (OAUTH_GITHUB_CLIENT_ID, ...)."""
    from chainlit.oauth_providers import get_configured_oauth_providers

    return bool(get_configured_oauth_providers())


async def _count_users(settings: Settings) -> int:
    async with open_database(settings.database) as engine:
        return await UserStore(engine).count()


def plan_auth(settings: Settings) -> AuthPlan:
    """Look at the user list and the SSO settings; refuse to start with sign-in but no secret."""
    users = run_sync(lambda: _count_users(settings))
    plan = AuthPlan(users=users, password=users > 0, header=settings.auth_header, oauth=oauth_configured())
    if plan.enabled and not settings.auth_secret:
        why = (
            f"{users} users are registered in {describe(settings.database)}"
            if users
            else "RAG_AUTH_HEADER or an OAuth provider is configured"
        )
        raise SettingsError(
            f"Sign-in is on ({why}), so CHAINLIT_AUTH_SECRET must be set. "
            "Create one with `.venv/bin/chainlit create-secret` and put it in .env or the environment."
        )
    return plan
