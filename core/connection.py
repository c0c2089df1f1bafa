"""How the knowledge base reaches Milvus: connection arguments per backend, retry timing, and which
failures are refusals (bad input) rather than outages."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pymilvus import MilvusException
from pymilvus.exceptions import DataNotMatchException, DataTypeNotMatchException, ParamError, PrimaryKeyException

from core.settings import Settings

RETRY_DELAYS = (0.2, 0.4, 0.8, 1.6, None)  # a failed call: tried again after each delay, then reported
OPEN_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0)  # connecting at start-up: about 15 s before giving up


# pymilvus pings every connection every 10 s, idle or not (gRPC keepalive), so that a network between
# client and server (NAT, load balancer) does not drop it silently. Over loopback there is no such network,
# and Milvus Lite's gRPC server (grpcio's defaults: no pings on an idle connection, at most one per 5 minutes
# during a call) answers those pings with GOAWAY "too_many_pings", logged by gRPC on stderr, and a reconnect.
# To Milvus Lite, in-process or `milvus-lite server`, and to anything on loopback: no keepalive pings.
NO_KEEPALIVE = {"grpc.keepalive_time_ms": 2**31 - 1}  # INT_MAX: gRPC's "never" (its default for clients)
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def on_loopback(uri: str) -> bool:
    host = urlparse(uri).hostname or ""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def connection_args(settings: Settings) -> dict[str, Any]:
    args: dict[str, Any] = {"uri": settings.milvus_uri}
    if settings.is_milvus_lite:
        Path(settings.milvus_uri).expanduser().parent.mkdir(parents=True, exist_ok=True)
        args["uri"] = str(Path(settings.milvus_uri).expanduser().resolve())
    if settings.is_milvus_lite or on_loopback(settings.milvus_uri):
        args["grpc_options"] = dict(NO_KEEPALIVE)
    if settings.milvus_token:
        args["token"] = settings.milvus_token.get_secret_value()
    return args


def where(settings: Settings) -> str:
    """The database in words, for messages."""
    return "Milvus Lite file " + settings.milvus_uri if settings.is_milvus_lite else "Milvus at " + settings.milvus_uri


# Invalid input, as pymilvus checks it or the server answers it (ILLEGAL_* codes; 1100 "invalid parameter").
_REFUSED_TYPES = (ParamError, DataNotMatchException, DataTypeNotMatchException, PrimaryKeyException)
_REFUSED_CODES = {*range(5, 14), 1100}


def is_refusal(exc: MilvusException) -> bool:
    """The database is there and said no: trying again would not change that."""
    return isinstance(exc, _REFUSED_TYPES) or exc.code in _REFUSED_CODES
