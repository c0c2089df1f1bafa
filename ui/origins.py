"""Which web pages may talk to the app: its own origin and the ones listed in config.toml's allow_origins;
and which host names it answers to at all."""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def _host_port(netloc: str, scheme: str) -> tuple[str, int] | None:
    parts = urlsplit(f"{scheme}://{netloc}")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:  # a port that is not a number
        return None
    return (parts.hostname or "", port) if parts.hostname else None


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """Whether a request carrying this Origin header may act with the browser's cookies.

    No Origin: not a cross-site page (browsers send it on every WebSocket and cross-origin request), so a
    script or command-line client, which cannot carry a member's cookie by accident. The app's own origin is
    the one whose host:port is the Host the request was sent to (a proxy in front must pass Host on; the
    host itself is checked by `host_allowed`).
    """
    if origin is None:
        return True
    if "*" in allowed or origin in allowed:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc or not host:
        return False  # "null" (sandboxed frames, file: pages) and anything odd
    theirs = _host_port(parts.netloc, parts.scheme)
    return theirs is not None and theirs == _host_port(host, parts.scheme)


def allowed_hosts(allowed_origins: list[str], bind_host: str | None) -> set[str] | None:
    """The host names this app answers to (None: any, when allow_origins has "*")."""
    if "*" in allowed_origins:
        return None
    hosts = set(LOOPBACK)
    hosts |= {h.lower() for h in (urlsplit(o).hostname for o in allowed_origins) if h}
    if bind_host and bind_host not in ("0.0.0.0", "::", ""):
        hosts.add(bind_host.lower().strip("[]"))
    return hosts


def host_allowed(host: str | None, hosts: set[str] | None) -> bool:
    if hosts is None:
        return True
    found = _host_port(host or "", "http")
    return found is not None and found[0].lower() in hosts
