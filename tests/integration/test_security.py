"""Attacks on the running app over HTTP and Chainlit's socket protocol (SECURITY.md's threat model).

Two real servers: single-user mode, and sign-in with three members. Every test here is a hole that was
reproduced against the app before it was closed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import pytest
import socketio

from tests.load.client import ChatClient
from tests.servers import ROOT, add_users, app_env, chainlit_process

AUTH_SECRET = "security-" + "k" * 56
PASSWORDS = {"alice": "alice-password", "bob": "bob-password", "carol": "carol-password", "dave": "dave-password"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
FACT = "The Kestrel vault door code is rotated every 45 days by the Halcyon security desk."


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    """Single-user mode, as the README runs it; unsent uploads expire after 2 s here."""
    data = tmp_path_factory.mktemp("single")
    with chainlit_process(data, RAG_UNSENT_UPLOAD_TTL_S="2") as (url, proc):
        yield url, proc, data


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data = tmp_path_factory.mktemp("team")
    add_users(f"sqlite+aiosqlite:///{data / 'app.db'}", [(u, p, "member") for u, p in PASSWORDS.items()])
    env = {"CHAINLIT_AUTH_SECRET": AUTH_SECRET, "RAG_DATABASE_URL": f"sqlite:///{data / 'app.db'}"}
    with chainlit_process(data, **env) as (url, _):
        yield url, data


def login(web: httpx.Client, user: str, password: str, **headers: str) -> httpx.Response:
    """POST /login as the browser does (multipart FormData)."""
    form = {"username": (None, user), "password": (None, password)}
    return web.post("/login", files=form, headers=headers)


def sign_in(url: str, user: str, source: str = "127.0.0.1", **headers: str) -> httpx.Response:
    """Sign in with the right password from the loopback address `source`."""
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=url, transport=transport, timeout=30) as web:
        return login(web, user, PASSWORDS.get(user, "x"), **headers)


def token_of(url: str, user: str) -> str:
    resp = sign_in(url, user)
    assert resp.status_code == 200, resp.text
    return str(resp.cookies["access_token"])


def sha256_b64(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"access_token={token}"}


async def attempt(url: str, session_id: str | None = None, headers: dict[str, str] | None = None) -> Any:
    """A raw socket connection with this session id and these headers: the client, or None if refused."""
    sio = socketio.AsyncClient(reconnection=False)
    auth = {"clientType": "webapp", "sessionId": session_id or str(uuid.uuid4()), "threadId": None, "userEnv": "{}"}
    try:
        await sio.connect(
            url, socketio_path="/ws/socket.io", transports=["websocket"], headers=dict(headers or {}), auth=auth
        )
    except socketio.exceptions.ConnectionError:
        return None
    return sio


async def refused(url: str, headers: dict[str, str] | None = None) -> bool:
    """Whether the server refuses this socket connection."""
    sio = await attempt(url, headers=headers)
    if sio is not None:
        await sio.disconnect()
    return sio is None


@pytest.fixture
async def alice_chat(team: tuple[str, Path]) -> AsyncIterator[ChatClient]:
    url, _ = team
    chat = ChatClient(url, headers=cookie(token_of(url, "alice")) | {"Origin": url})
    await chat.connect()
    yield chat
    await chat.close()


# 1. A socket session id is never a path ------------------------------------------------------------
async def test_a_session_id_that_is_not_a_uuid_is_refused_and_deletes_nothing(
    single: tuple[str, Any, Path], tmp_path: Path
) -> None:
    url, _, data = single
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    app_root = data / "app-root"
    files = app_root / ".files"
    for session_id in [str(victim), str(Path("..") / ".." / ".." / victim.relative_to("/")), "../public", "", "x/.."]:
        sio = await attempt(url, session_id=session_id or " ")
        if sio is None:
            continue
        # What an attacker does next: end the session, which makes Chainlit delete "its" folder.
        await sio.emit("clear_session")
        await sio.disconnect()
        await asyncio.sleep(1)
        pytest.fail(f"session id {session_id!r} was accepted")
    assert (victim / "precious.txt").read_text() == "keep me"
    assert (data / "kb.db").exists() and (data / "app.db").exists()
    ours = sorted(p.name for p in (ROOT / "public").iterdir())  # the app's own CSS and pictures
    assert sorted(p.name for p in (app_root / "public").iterdir()) == ours  # nothing uploaded landed there
    assert files.exists()


async def test_an_uploaded_page_is_never_served_as_active_content(
    single: tuple[str, Any, Path], tmp_path: Path
) -> None:
    url, _, _ = single
    page = tmp_path / "page.html"
    page.write_text("<html><body><script>fetch('/project/threads')</script>hello</body></html>")
    chat = ChatClient(url, headers={"Origin": url})
    await chat.connect()
    try:
        ref = await chat.upload(page)
        async with httpx.AsyncClient(base_url=url) as web:
            served = await web.get(f"/project/file/{ref['id']}", params={"session_id": chat.session_id})
        assert served.status_code == 200
        assert "text/html" not in served.headers["content-type"]
        assert served.headers.get("x-content-type-options") == "nosniff"
        assert served.headers.get("content-disposition", "").startswith("attachment")
        assert "sandbox" in served.headers.get("content-security-policy", "")
    finally:
        await chat.close()


# 2. The socket checks the Origin -------------------------------------------------------------------
async def test_the_socket_refuses_foreign_origins(single: tuple[str, Any, Path], team: tuple[str, Path]) -> None:
    url, _, _ = single
    assert await refused(url, headers={"Origin": "http://evil.example.com"})
    assert await refused(url, headers={"Origin": "null"})
    assert not await refused(url, headers={"Origin": url})  # the app's own page
    assert not await refused(url, headers={"Origin": "http://localhost:8000"})  # listed in allow_origins
    assert not await refused(url)  # no Origin: not a browser page, it cannot carry anyone's cookie
    team_url, _ = team
    token = token_of(team_url, "alice")
    port = int(team_url.rsplit(":", 1)[1])
    sibling = f"http://127.0.0.1:{port + 1}"  # another app on the same host: same site, the cookie goes along
    assert await refused(team_url, headers=cookie(token) | {"Origin": sibling})
    assert not await refused(team_url, headers=cookie(token) | {"Origin": team_url})
    # A state-changing request from a foreign page is refused too (the browser sends simple POSTs cross-origin).
    async with httpx.AsyncClient(base_url=team_url) as web:
        foreign = cookie(token) | {"Origin": "http://evil.example.com"}
        assert (await web.post("/logout", headers=foreign)).status_code == 403


# 3. Feedback belongs to its author -----------------------------------------------------------------
async def test_feedback_can_be_given_changed_and_deleted_only_by_the_threads_author(
    team: tuple[str, Path], alice_chat: ChatClient
) -> None:
    url, data = team
    reply = await alice_chat.ask("Who rotates the Kestrel vault code?")
    assert alice_chat.thread_id and reply.ids
    message, thread = reply.ids[-1], alice_chat.thread_id
    await asyncio.sleep(1)  # the steps are written to the database in the background
    alice = {"Origin": url} | cookie(token_of(url, "alice"))
    bob = {"Origin": url} | cookie(token_of(url, "bob"))
    async with httpx.AsyncClient(base_url=url) as web:
        forged_thread = str(uuid.uuid4())
        body = {"feedback": {"forId": message, "threadId": forged_thread, "value": 1, "comment": "great"}}
        mine = await web.put("/feedback", json=body | {"sessionId": alice_chat.session_id}, headers=alice)
        assert mine.status_code == 200, mine.text
        feedback_id = mine.json()["feedbackId"]
        # Bob saw the ids in a shared thread: he may not overwrite, forge or delete Alice's feedback.
        bad = {"id": feedback_id, "forId": message, "threadId": thread, "value": 0, "comment": "bad"}
        assert (await web.put("/feedback", json={"feedback": bad, "sessionId": ""}, headers=bob)).status_code == 404
        forge = {"feedback": {"forId": message, "threadId": thread, "value": 0, "comment": "forged"}}
        assert (await web.put("/feedback", json=forge | {"sessionId": ""}, headers=bob)).status_code == 404
        gone = await web.request("DELETE", "/feedback", json={"feedbackId": feedback_id}, headers=bob)
        assert gone.status_code == 404
        # Nor may Alice move her feedback onto a message of someone else's thread by naming its id.
        stranger = {"feedback": {"forId": str(uuid.uuid4()), "threadId": thread, "value": 0, "comment": "x"}}
        assert (await web.put("/feedback", json=stranger | {"sessionId": ""}, headers=alice)).status_code == 404
    with sqlite3.connect(data / "app.db") as db:
        rows = db.execute('SELECT "id", "threadId", "value", "comment" FROM feedbacks').fetchall()
    assert rows == [(feedback_id, thread, 1, "great")]  # the thread id comes from the database, not the request
    async with httpx.AsyncClient(base_url=url) as web:
        mine_gone = await web.request("DELETE", "/feedback", json={"feedbackId": feedback_id}, headers=alice)
        assert mine_gone.status_code == 200
    with sqlite3.connect(data / "app.db") as db:
        assert db.execute("SELECT COUNT(*) FROM feedbacks").fetchone() == (0,)


async def test_a_message_id_from_another_thread_cannot_overwrite_that_message(
    team: tuple[str, Path], alice_chat: ChatClient
) -> None:
    url, _ = team
    await alice_chat.ask("Who rotates the Kestrel vault code?")
    await asyncio.sleep(1)
    alice = {"Origin": url} | cookie(token_of(url, "alice"))
    async with httpx.AsyncClient(base_url=url) as web:
        steps = (await web.get(f"/project/thread/{alice_chat.thread_id}", headers=alice)).json()["steps"]
    theirs = next(s for s in steps if s["type"] == "user_message")
    bob = ChatClient(url, headers={"Origin": url} | cookie(token_of(url, "bob")))
    await bob.connect()
    message = {"id": theirs["id"], "threadId": "", "name": "User", "type": "user_message", "createdAt": ""}
    await bob.sio.emit("client_message", {"message": message | {"output": "EDITED BY BOB"}, "fileReferences": []})
    await asyncio.sleep(3)
    await bob.close()
    async with httpx.AsyncClient(base_url=url) as web:
        again = (await web.get(f"/project/thread/{alice_chat.thread_id}", headers=alice)).json()["steps"]
    assert next(s for s in again if s["id"] == theirs["id"])["output"] == theirs["output"]


# 4. A removed user is out at once ------------------------------------------------------------------
async def test_a_removed_user_is_out_at_once(team: tuple[str, Path], tmp_path: Path) -> None:
    url, data = team
    token = token_of(url, "carol")
    headers = cookie(token) | {"Origin": url}
    chat = ChatClient(url, headers=headers)
    await chat.connect()  # a live session from before the removal
    async with httpx.AsyncClient(base_url=url) as web:  # (httpx drops a client-wide Cookie header)
        assert (await web.get("/user", headers=headers)).status_code == 200
    env = app_env(data, RAG_DATABASE_URL=f"sqlite:///{data / 'app.db'}")
    command = [sys.executable, "-m", "core", "users", "remove", "carol"]
    removed = await asyncio.to_thread(subprocess.run, command, env=env, cwd=ROOT, capture_output=True, text=True)
    assert removed.returncode == 0, removed.stderr
    async with httpx.AsyncClient(base_url=url) as web:
        assert (await web.get("/user", headers=headers)).status_code == 401
        page = await web.get("/", headers=headers | {"Accept": "text/html"})  # the page: on to the sign-in form
        assert page.status_code == 200 and "access_token=;" in page.headers.get("set-cookie", "")
        page = {"pagination": {"first": 5}, "filter": {}}
        assert (await web.post("/project/threads", json=page, headers=headers)).status_code == 401
        assert (await web.post("/auth/jwt", headers={"Authorization": f"Bearer {token}"})).status_code == 401
    assert await refused(url, headers=headers)
    doc = tmp_path / "note.md"
    doc.write_text(FACT)
    with pytest.raises(httpx.HTTPStatusError):
        await chat.upload(doc)
    reply = await chat.ask("Who rotates the Kestrel vault code?")
    assert "no longer" in " ".join(reply.errors)
    await chat.close()


def test_a_refreshed_token_does_not_outlive_the_day_of_its_sign_in(team: tuple[str, Path]) -> None:
    url, _ = team
    token = token_of(url, "dave")
    first = jwt.decode(token, AUTH_SECRET, algorithms=["HS256"])
    time.sleep(1.1)
    with httpx.Client(base_url=url) as web:
        again = web.post("/auth/jwt", headers={"Authorization": f"Bearer {token}", "Origin": url})
    assert again.status_code == 200, again.text
    second = jwt.decode(again.cookies["access_token"], AUTH_SECRET, algorithms=["HS256"])
    assert second["identifier"] == "dave" and second["exp"] <= first["exp"]


async def test_a_page_under_another_host_name_gets_nothing(single: tuple[str, Any, Path]) -> None:
    """DNS rebinding: evil.example re-pointed at this machine; its page's requests carry its own name."""
    url, _, _ = single
    evil = {"Host": "evil.example:8000", "Origin": "http://evil.example:8000"}
    async with httpx.AsyncClient(base_url=url) as web:
        assert (await web.get("/project/settings?language=en-US", headers=evil)).status_code == 400
        assert (await web.get("/", headers={"Host": "localhost.evil.example"})).status_code == 400
    assert await refused(url, headers=evil)


# 5. Names and passages are shown as text: see tests/e2e/test_security_browser.py; the headers here.
def test_every_page_carries_a_content_security_policy(single: tuple[str, Any, Path]) -> None:
    url, _, _ = single
    with httpx.Client(base_url=url) as web:
        page = web.get("/", headers={"Accept-Encoding": "gzip"})  # as browsers ask for it
        policy = page.headers["content-security-policy"]
        scripts = re.findall(r"<script>(.*?)</script>", page.text, re.S)
        assert scripts and all(f"'sha256-{sha256_b64(s)}'" in policy for s in scripts)  # Chainlit's boot script runs
        assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";")[0]
        for path in ("/", "/project/settings?language=en-US", "/some/client/route"):
            resp = web.get(path)
            policy = resp.headers.get("content-security-policy", "")
            assert "img-src 'self' data:" in policy, path
            assert "frame-ancestors 'self'" in policy or resp.headers.get("x-frame-options") == "SAMEORIGIN", path
            assert resp.headers.get("x-content-type-options") == "nosniff", path


# 6. A shared conversation is a snapshot ------------------------------------------------------------
async def test_a_shared_conversation_is_the_snapshot_taken_when_shared(
    team: tuple[str, Path], alice_chat: ChatClient
) -> None:
    url, _ = team
    reply = await alice_chat.ask("Who rotates the Kestrel vault code?")
    thread = alice_chat.thread_id
    await asyncio.sleep(1)
    alice = {"Origin": url} | cookie(token_of(url, "alice"))
    bob = {"Origin": url} | cookie(token_of(url, "bob"))
    async with httpx.AsyncClient(base_url=url) as web:
        rating = {"feedback": {"forId": reply.ids[-1], "value": 0, "comment": "private note"}, "sessionId": ""}
        assert (await web.put("/feedback", json=rating, headers=alice)).status_code == 200
        shared = await web.put("/project/thread/share", json={"threadId": thread, "isShared": True}, headers=alice)
        assert shared.status_code == 200, shared.text
    await asyncio.sleep(1.1)
    await alice_chat.ask("A later question that was never shared?")
    await asyncio.sleep(1)
    async with httpx.AsyncClient(base_url=url) as web:
        seen = await web.get(f"/project/share/{thread}", headers=bob)
        own = await web.get(f"/project/thread/{thread}", headers=alice)
    assert seen.status_code == 200, seen.text
    outputs = [s.get("output") or "" for s in seen.json()["steps"]]
    assert "Who rotates the Kestrel vault code?" in outputs
    assert not any("never shared" in o for o in outputs)
    assert any("never shared" in (s.get("output") or "") for s in own.json()["steps"])  # the owner sees it all
    raw = seen.text
    assert alice_chat.session_id not in raw and "private note" not in raw  # nor the owner's ratings
    metadata = seen.json()["metadata"]
    metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
    assert "history" not in metadata and "id" not in metadata and "options" not in metadata


# 7. Sign-in throttling cannot lock people out ------------------------------------------------------
def test_failed_sign_ins_slow_the_guesser_not_the_owner(team: tuple[str, Path]) -> None:
    url, _ = team
    attacker = "127.0.0.7"
    codes = []
    for i in range(12):
        transport = httpx.HTTPTransport(local_address=attacker)
        with httpx.Client(base_url=url, transport=transport) as web:
            resp = login(web, "Bob" if i % 2 else " bob", "wrong guess")  # spellings of one name count as one
        codes.append(resp.status_code)
    assert 429 in codes  # the guesser is slowed down...
    assert codes.count(401) <= 6
    ok = sign_in(url, "bob", source="127.0.0.8")  # ...but Bob, from his own address, signs in at once
    assert ok.status_code == 200, ok.text
    with httpx.Client(base_url=url, transport=httpx.HTTPTransport(local_address=attacker)) as web:
        # (Bob's sign-in took a moment, in which the guesser's wait may have run out: one more guess renews it.)
        slow = [login(web, "bob", "wrong guess") for _ in range(3)][-1]
        # A url-encoded form, or the name twice (FastAPI reads the last), is the same guess of the same name.
        assert web.post("/login", data={"username": "bob", "password": "x"}).status_code == 429
        doubled = [("username", "decoy"), ("username", "bob"), ("password", "x")]
        assert web.post("/login", content=urlencode(doubled), headers=FORM).status_code == 429
    assert slow.status_code == 429 and int(slow.headers["retry-after"]) >= 1
    assert "try again" in slow.json()["detail"].lower()


def test_signing_in_as_yourself_does_not_wipe_your_guesses_at_a_teammate(team: tuple[str, Path]) -> None:
    url, _ = team
    with httpx.Client(base_url=url, transport=httpx.HTTPTransport(local_address="127.0.0.10")) as web:
        codes = []
        for _ in range(3):
            codes.append(login(web, "alice", "a guess").status_code)
            codes.append(login(web, "dave", PASSWORDS["dave"]).status_code)  # his own account, in between
        codes.append(login(web, "alice", "another guess").status_code)
    assert codes[-1] == 429, codes


def test_one_password_sprayed_over_many_names_is_slowed(team: tuple[str, Path]) -> None:
    url, _ = team
    codes = []
    with httpx.Client(base_url=url, transport=httpx.HTTPTransport(local_address="127.0.0.9")) as web:
        for i in range(30):
            codes.append(login(web, f"user{i}", "Summer2026!").status_code)
    assert codes.count(429) >= 10, codes


# 8. Uploads are bounded before they are read -------------------------------------------------------
def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_an_oversized_upload_is_refused_before_it_is_read(single: tuple[str, Any, Path]) -> None:
    url, proc, _ = single
    chat = ChatClient(url, headers={"Origin": url})
    await chat.connect()
    try:
        before = rss_mb(proc.pid)
        size = 120 * 1024 * 1024
        boundary = "x" * 16
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        def body() -> Iterator[bytes]:
            yield head
            for _ in range(size // (1 << 20)):
                yield b"a" * (1 << 20)
            yield tail

        def post() -> int:
            with httpx.Client(base_url=url, timeout=60) as web:
                try:
                    return web.post(
                        "/project/file",
                        params={"session_id": chat.session_id},
                        content=body(),
                        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                    ).status_code
                except httpx.HTTPError:
                    return 413  # the server closed the connection once the limit was passed

        assert await asyncio.to_thread(post) == 413
        assert rss_mb(proc.pid) - before < 40, "the body was buffered"
    finally:
        await chat.close()


async def test_uploads_never_sent_are_removed_and_sent_ones_keep_opening(
    single: tuple[str, Any, Path], tmp_path: Path
) -> None:
    url, _, data = single  # unsent uploads expire after 2 s on this server
    chat = ChatClient(url, headers={"Origin": url})
    await chat.connect()
    folder = data / "app-root" / ".files" / chat.session_id
    try:
        sent = tmp_path / "sent.md"
        sent.write_text(f"# Vault\n\n{FACT}\n")
        ref = await chat.upload(sent)
        reply = await chat.ask("", file_ids=[ref])
        assert "indexed" in reply.text
        answer = await chat.ask("Who rotates the Kestrel vault door code?")
        assert "Halcyon" in answer.text
        unsent = tmp_path / "unsent.md"
        unsent.write_text("never sent")
        forgotten = await chat.upload(unsent)
        assert (folder / f"{forgotten['id']}.md").exists()
        for _ in range(60):
            if not (folder / f"{forgotten['id']}.md").exists():
                break
            await asyncio.sleep(0.5)
        assert not (folder / f"{forgotten['id']}.md").exists(), "an unsent upload was never removed"
        async with httpx.AsyncClient(base_url=url) as web:
            params = {"session_id": chat.session_id}
            assert (await web.get(f"/project/file/{ref['id']}", params=params)).status_code == 200  # its chip
            assert (await web.get(f"/project/file/{forgotten['id']}", params=params)).status_code == 404
            # The answer's sources (files Chainlit made for the side panel) are not uploads: they stay.
            for key in chat.element_keys:
                assert (await web.get(f"/project/file/{key}", params=params)).status_code == 200
        assert chat.element_keys
    finally:
        await chat.close()


# 10. The login cookie is Secure over HTTPS ---------------------------------------------------------
def test_the_login_cookie_is_secure_behind_an_https_proxy(team: tuple[str, Path]) -> None:
    url, _ = team
    over_https = sign_in(url, "alice", **{"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.5"})
    assert over_https.status_code == 200
    assert "secure" in over_https.headers["set-cookie"].lower()
    plain = sign_in(url, "alice")
    assert "secure" not in plain.headers["set-cookie"].lower()  # plain HTTP on loopback still signs in
