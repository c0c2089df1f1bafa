"""The app's data is its user's alone: folders 0700 and files 0600, whatever the umask we were started with."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy.engine import make_url

from core.settings import Settings

log = logging.getLogger(__name__)

OTHERS = 0o077  # group and world bits: never set on our data


def database_paths(url: str) -> list[Path]:
    """A SQLite database's file with its -wal, -shm and -journal companions (none for a server)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return []
    db = Path(parsed.database).expanduser()
    return [db, *(db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]


def data_paths(settings: Settings) -> list[Path]:
    """What the app keeps on this disk: the Milvus Lite folder, the kept originals, stored answers' sources
    and the SQLite database."""
    lite = [Path(settings.milvus_uri).expanduser()] if settings.is_milvus_lite else []
    files = [Path(settings.files_dir).expanduser(), Path(settings.sources_dir).expanduser()]
    return [*lite, *files, *database_paths(settings.database)]


def keep_private(paths: Iterable[Path]) -> None:
    """Make this process create files 0600 and folders 0700 from now on (umask 077), and take the group and
    world bits off what `paths` already hold (recursively; links inside are not followed) and off a folder of theirs
    that holds nothing else (`data/`). Nothing else is touched."""
    os.umask(OTHERS)
    named = {Path(os.path.abspath(p)) for p in paths}
    real = {p.resolve() for p in named}  # a configured path may be a link to a volume: its target is ours
    for path in real:
        _tighten(path)
        if path.is_dir():
            for inside, dirs, files in os.walk(path):
                for name in dirs + files:
                    _tighten(Path(inside) / name)
    for folder in {p.parent for p in real}:
        try:
            if all(entry in named | real for entry in folder.iterdir()):
                _tighten(folder)
        except OSError:  # not there (yet): it will be made under our umask
            pass


def _tighten(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode) and mode & OTHERS:
            os.chmod(path, stat.S_IMODE(mode) & ~OTHERS)
    except FileNotFoundError:
        pass
    except OSError as exc:  # e.g. made by another user: say so, keep running
        log.warning("could not make %s private: %s", path, exc)
