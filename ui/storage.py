"""Where Chainlit's data layer keeps the sources of stored answers, so reopened and shared conversations
show the same clickable passages and PDF pages as the live answer.

`LocalStorage` (the default) keeps them on this disk, inside the data folder, and serves them only through
our route, to people who may read the conversation they belong to (ui/routes.py). Each file is stored once
however many answers cite it: an answer's PDF page is the whole PDF, so a copy per answer would add up.
For a team on several machines, `RAG_SOURCES_BUCKET` puts them in S3 (or an S3-compatible store) with
Chainlit's own client instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chainlit.data.storage_clients.base import BaseStorageClient

from core.settings import Settings
from ui.history import HistoryLayer, clean_metadata, when

ROUTE = "/sources"  # our route that serves LocalStorage files (ui/routes.py)
_TOKEN = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Stored:
    object_key: str  # Chainlit's key: "<user id>/<element id>/<element name>"
    path: Path
    mime: str


def _digest(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


class LocalStorage(BaseStorageClient):
    """Element files under `root`: `blobs/<sha256 of content>` once per content, `keys/<token>.json` per
    element naming its blob and type, and `refs/<blob>/<token>` so a blob goes with the last element showing
    it. The URL holds only the token (a hash of Chainlit's object key)."""

    def __init__(self, root: Path, url_root: str = "") -> None:
        self.root, self.url_root = root, url_root.rstrip("/")
        self._lock = asyncio.Lock()  # a delete must not remove a blob a concurrent upload is pointing at

    @staticmethod
    def token(object_key: str) -> str:
        return _digest(object_key)

    def url(self, object_key: str) -> str:
        return f"{self.url_root}{ROUTE}/{self.token(object_key)}"

    async def upload_file(
        self,
        object_key: str,
        data: bytes | str,
        mime: str = "application/octet-stream",
        overwrite: bool = True,
        content_disposition: str | None = None,
    ) -> dict[str, Any]:
        content = data.encode() if isinstance(data, str) else bytes(data)
        async with self._lock:
            await asyncio.to_thread(self._write, object_key, content, mime)
        return {"object_key": object_key, "url": self.url(object_key)}

    def _write(self, object_key: str, content: bytes, mime: str) -> None:
        blob = _digest(content)
        blob_path = self.root / "blobs" / blob
        if not blob_path.exists():
            _atomic_write(blob_path, content)
        token = self.token(object_key)
        old = self._record(token)
        _atomic_write(self.root / "refs" / blob / token, b"")
        record = {"object_key": object_key, "blob": blob, "mime": mime}
        _atomic_write(self.root / "keys" / f"{token}.json", json.dumps(record).encode())
        if old is not None and old["blob"] != blob:  # overwritten with other content
            self._unref(str(old["blob"]), token)

    async def delete_file(self, object_key: str) -> bool:
        async with self._lock:
            return await asyncio.to_thread(self._delete, self.token(object_key))

    def _delete(self, token: str) -> bool:
        record = self._record(token)
        if record is None:
            return False
        (self.root / "keys" / f"{token}.json").unlink(missing_ok=True)
        self._unref(str(record["blob"]), token)
        return True

    def _unref(self, blob: str, token: str) -> None:
        refs = self.root / "refs" / blob
        (refs / token).unlink(missing_ok=True)
        if refs.exists() and not any(refs.iterdir()):  # no other element shows it
            (self.root / "blobs" / blob).unlink(missing_ok=True)
            refs.rmdir()

    async def get_read_url(self, object_key: str) -> str:
        return self.url(object_key)

    async def close(self) -> None:
        return None

    async def find(self, token: str) -> Stored | None:
        """The stored file behind a URL token (None for anything else, including a malformed token)."""
        if not _TOKEN.match(token):
            return None
        record = await asyncio.to_thread(self._record, token)
        if record is None:
            return None
        path = self.root / "blobs" / str(record["blob"])
        return Stored(str(record["object_key"]), path, str(record["mime"])) if path.exists() else None

    def _record(self, token: str) -> dict[str, Any] | None:
        try:
            record = json.loads((self.root / "keys" / f"{token}.json").read_text())
        except (OSError, ValueError):
            return None
        valid = isinstance(record, dict) and _TOKEN.match(str(record.get("blob", "")))
        return record if valid else None


def _atomic_write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


async def may_read(layer: HistoryLayer, object_key: str, reader: str) -> bool:
    """Whether `reader` may open a stored element: it belongs to a conversation of theirs, or to one that is
    shared and it was there when it was shared (what ui.history.as_shared shows readers)."""
    rows = await layer.execute_sql(
        'SELECT t."userIdentifier" AS author, t."metadata" AS metadata, s."createdAt" AS created '
        'FROM elements e JOIN threads t ON t."id" = e."threadId" LEFT JOIN steps s ON s."id" = e."forId" '
        'WHERE e."objectKey" = :key',
        {"key": object_key},
    )
    for row in rows if isinstance(rows, list) else []:
        if row["author"] == reader:
            return True
        metadata = clean_metadata(row["metadata"])
        shared_at, created = when(metadata.get("shared_at")), when(row["created"])
        if metadata.get("is_shared") and shared_at and created and created <= shared_at:
            return True
    return False


def make_storage(settings: Settings, url_root: str = "") -> BaseStorageClient:
    """S3 when a bucket is set (credentials from boto3's usual variables), else this disk."""
    if settings.sources_bucket:
        from chainlit.data.storage_clients.s3 import S3StorageClient  # needs boto3: pip install '.[s3]'

        options = {"endpoint_url": settings.sources_endpoint_url} if settings.sources_endpoint_url else {}
        return S3StorageClient(bucket=settings.sources_bucket, **options)
    return LocalStorage(Path(settings.sources_dir).expanduser(), url_root)
