"""Our own versions of Chainlit routes that trust the request too much: feedback and token refresh.

They are put in front of Chainlit's routes of the same path, so Chainlit's never run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import jwt as pyjwt
from chainlit.auth import get_current_user, set_auth_cookie
from chainlit.auth.jwt import get_jwt_secret
from chainlit.data import get_data_layer
from chainlit.types import DeleteFeedbackRequest, UpdateFeedbackRequest
from chainlit.user import User
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse

from ui.history import HistoryLayer
from ui.storage import ROUTE, LocalStorage, may_read
from ui.tokens import bearer, claims

CurrentUser = Annotated[Any, Depends(get_current_user)]
NOT_YOURS = "There is no such message in your conversations."
NO_SOURCE = "There is no such source in the conversations you may read."
INLINE = {"application/pdf", "text/plain"}  # what answers' sources are; anything else is only downloaded


def _history() -> HistoryLayer:
    layer = get_data_layer()
    if not isinstance(layer, HistoryLayer):
        raise HTTPException(status_code=400, detail="Chat history is not enabled")
    return layer


def _identifier(user: Any) -> str:
    if user is None:
        raise HTTPException(status_code=401, detail="Unauthorized")
    return str(user.identifier)


def make_router(prefix: str, known: Callable[[str], Awaitable[bool]]) -> APIRouter:
    router = APIRouter(prefix=prefix)

    @router.put("/feedback")
    async def update_feedback(update: UpdateFeedbackRequest, current_user: CurrentUser) -> JSONResponse:
        """Rate an answer: only in your own threads, and the thread is the message's, not the request's."""
        layer = _history()
        feedback = await layer.owned_feedback(_identifier(current_user), update.feedback)
        if feedback is None:
            raise HTTPException(status_code=404, detail=NOT_YOURS)
        return JSONResponse({"success": True, "feedbackId": await layer.upsert_feedback(feedback)})

    @router.delete("/feedback")
    async def delete_feedback(payload: DeleteFeedbackRequest, current_user: CurrentUser) -> JSONResponse:
        layer = _history()
        step = await layer.feedback_step(payload.feedbackId)
        owner = await layer.step_owner(step) if step else None
        if owner is None or owner.author != _identifier(current_user):
            raise HTTPException(status_code=404, detail=NOT_YOURS)
        await layer.delete_feedback(payload.feedbackId)
        return JSONResponse({"success": True})

    @router.get(ROUTE + "/{token}")
    async def stored_source(token: str, current_user: CurrentUser) -> FileResponse:
        """A source of a stored answer (LocalStorage), for people who may read its conversation."""
        layer = _history()
        storage = layer.storage_provider
        stored = await storage.find(token) if isinstance(storage, LocalStorage) else None
        if stored is None or not await may_read(layer, stored.object_key, _identifier(current_user)):
            raise HTTPException(status_code=404, detail=NO_SOURCE)
        inline = stored.mime.split(";")[0].strip() in INLINE
        return FileResponse(
            stored.path,
            media_type=stored.mime if inline else "application/octet-stream",
            content_disposition_type="inline" if inline else "attachment",
            headers={"Cache-Control": "private, no-store", "Content-Security-Policy": "sandbox"},
        )

    @router.post("/auth/jwt")
    async def refresh_token(request: Request) -> JSONResponse:
        """A new cookie for a still-valid token of a current user, expiring when the old one does: a
        session lasts one day from sign-in, however often it is refreshed."""
        found = claims(bearer(request.headers.get("Authorization")))
        secret = get_jwt_secret()
        if found is None or not secret:
            raise HTTPException(status_code=401, detail="Invalid token")
        if not await known(str(found["identifier"])):
            raise HTTPException(status_code=401, detail="This account is no longer on this deployment's user list.")
        user = User(
            identifier=found["identifier"], display_name=found.get("display_name"), metadata=found.get("metadata") or {}
        )
        fresh = user.to_dict() | {"exp": found["exp"], "iat": datetime.now(UTC)}
        response = JSONResponse({"success": True})
        set_auth_cookie(request, response, pyjwt.encode(fresh, secret, algorithm="HS256"))
        return response

    return router


def put_first(app: FastAPI, router: APIRouter) -> None:
    """Serve these routes before Chainlit's (Starlette tries routes in order; the first match answers)."""
    app.router.routes[:0] = router.routes
