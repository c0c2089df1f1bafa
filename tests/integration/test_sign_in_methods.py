"""Sign-in methods against the real server: SSO header, OAuth set-up, and the start-up checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.servers import ROOT, add_users, app_env, chainlit_server, free_port, start_app

SECRET = {"CHAINLIT_AUTH_SECRET": "t" * 64}


def test_users_without_a_secret_refuse_to_start_with_a_plain_message(tmp_path: Path) -> None:
    add_users(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}", [("alice", "long enough", "admin")])
    env = app_env(tmp_path)
    env.pop("CHAINLIT_AUTH_SECRET", None)
    proc = start_app(free_port(), env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "Cannot start: Sign-in is on (1 users are registered" in out and "CHAINLIT_AUTH_SECRET" in out
    assert "Traceback" not in out


def test_sso_header_signs_in_known_users_only(tmp_path: Path) -> None:
    add_users(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}", [("carol", "long enough", "admin")])
    with (
        chainlit_server(tmp_path, RAG_AUTH_HEADER="X-Forwarded-User", **SECRET) as url,
        httpx.Client(base_url=url) as web,
    ):
        config = web.get("/auth/config").json()
        assert config["requireLogin"] and config["headerAuth"] and config["passwordAuth"]
        assert web.post("/auth/header").status_code == 401
        assert web.post("/auth/header", headers={"X-Forwarded-User": "mallory"}).status_code == 401
        assert web.get("/user").status_code == 401
        signed = web.post("/auth/header", headers={"X-Forwarded-User": "Carol"})
        assert signed.status_code == 200, signed.text
        me = web.get("/user").json()  # the session cookie set by the sign-in
        assert me["identifier"] == "carol" and me["metadata"]["role"] == "admin"


def test_auto_signup_and_oauth_providers(tmp_path: Path) -> None:
    oauth = {"OAUTH_GITHUB_CLIENT_ID": "id-for-tests", "OAUTH_GITHUB_CLIENT_SECRET": "secret-for-tests"}
    env = {"RAG_AUTH_HEADER": "X-Forwarded-User", "RAG_AUTH_AUTO_SIGNUP": "true", **SECRET, **oauth}
    with chainlit_server(tmp_path, **env) as url, httpx.Client(base_url=url) as web:
        config = web.get("/auth/config").json()
        assert "github" in config["oauthProviders"] and not config["passwordAuth"]  # no users with passwords yet
        redirect = web.get("/auth/oauth/github", follow_redirects=False)
        assert redirect.status_code in (302, 307) and "github.com/login/oauth" in redirect.headers["location"]
        assert web.post("/auth/header", headers={"X-Forwarded-User": "dan@example.com"}).status_code == 200
        assert web.get("/user").json()["metadata"]["role"] == "member"
    listed = subprocess.run(
        [sys.executable, "-m", "core", "users", "list"],
        env=app_env(tmp_path),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "dan@example.com" in listed.stdout and "member" in listed.stdout
