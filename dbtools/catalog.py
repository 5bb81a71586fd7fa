"""The backups in a folder or store: what each holds, which one `latest` is, are they whole."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import orjson

from .archive import PARTIAL_SUFFIX, ArchiveReader, verify
from .backup import TIMESTAMPED, current_latest, timestamped_backups
from .envelope import can_decrypt, is_encrypted
from .exceptions import ArchiveError
from .storage import BackupFile, Location, S3Store, file_size, open_file, same_backup


@dataclass
class BackupInfo:
    path: BackupFile
    size: int
    meta: dict[str, Any] | None  # None when the header cannot be read
    tables: int | None
    rows: int | None
    is_latest: bool
    problem: str | None = None  # why it cannot be restored, if it cannot
    locked: bool = False  # encrypted, and no identity was given to open it

    @property
    def only_as_latest(self) -> bool:
        """`latest`, whose timestamped file is no longer there."""
        return self.is_latest and TIMESTAMPED.match(self.path.name) is None

    @property
    def newest_migrations(self) -> dict[str, str]:
        migrations = (self.meta or {}).get("migrations", {})
        return {app: names[-1] for app, names in sorted(migrations.items()) if names}


def read_summary(path: BackupFile) -> dict[str, Any] | None:
    """The summary line of an uncompressed backup, read from its end (cheap)."""
    with open_file(path) as f:
        if f.read(1) != b"{":  # compressed or encrypted
            return None
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 4096))
        tail = f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    if not tail.startswith(b'],"summary":'):
        return None
    try:
        summary: dict[str, Any] = orjson.loads(b"{" + tail[2:])["summary"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return summary


def list_backups(folder: Location, check: bool = False) -> list[BackupInfo]:
    """Timestamped backups in a folder or store, newest first. `check` reads each through.

    A `latest` whose timestamped file is gone (deleted by hand) is still a backup
    restoredb restores: it is listed first, under its own name."""
    latest = current_latest(folder)
    infos = []
    for path in timestamped_backups(folder):
        is_latest = latest is not None and same_backup(path, latest)
        infos.append(describe(path, is_latest, check))
    if latest is not None and not any(info.is_latest for info in infos):
        infos.insert(0, describe(latest, True, check))
    return infos


def describe(path: BackupFile, is_latest: bool, check: bool) -> BackupInfo:
    info = BackupInfo(path, file_size(path), None, None, None, is_latest)
    if is_encrypted(path) and not can_decrypt():
        info.locked = True
        return info
    try:
        with ArchiveReader(path) as reader:
            info.meta = reader.meta
        # A compressed file's end can only be found by reading it through.
        summary = (None if check else read_summary(path)) or verify(path)
        info.tables, info.rows = summary["tables"], summary["rows"]
    except ArchiveError as exc:
        info.problem = str(exc)
    return info


def leftovers(folder: Location) -> list[str]:
    """Names of partial files (or, in a bucket, unfinished uploads) left by a backup
    that was killed; safe to delete."""
    if isinstance(folder, S3Store):
        return folder.unfinished_uploads()
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(PARTIAL_SUFFIX))
