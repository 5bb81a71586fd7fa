"""The backups in a folder: what each holds, which one `latest` is, are they whole."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .archive import PARTIAL_SUFFIX, ArchiveReader, verify
from .backup import latest_files, timestamped_backups
from .envelope import can_decrypt, is_encrypted
from .exceptions import ArchiveError


@dataclass
class BackupInfo:
    path: Path
    size: int
    meta: dict[str, Any] | None  # None when the header cannot be read
    tables: int | None
    rows: int | None
    is_latest: bool
    problem: str | None = None  # why it cannot be restored, if it cannot
    locked: bool = False  # encrypted, and no identity was given to open it

    @property
    def newest_migrations(self) -> dict[str, str]:
        migrations = (self.meta or {}).get("migrations", {})
        return {app: names[-1] for app, names in sorted(migrations.items()) if names}


def read_summary(path: Path) -> dict[str, Any] | None:
    """The summary line of an uncompressed backup, read from its end (cheap)."""
    with open(path, "rb") as f:
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


def list_backups(folder: Path, check: bool = False) -> list[BackupInfo]:
    """Timestamped backups in `folder`, newest first. `check` reads each through."""
    latest = latest_files(folder)
    infos = []
    for path in timestamped_backups(folder):
        info = BackupInfo(
            path, path.stat().st_size, None, None, None, any(path.samefile(p) for p in latest)
        )
        if is_encrypted(path) and not can_decrypt():
            info.locked = True
            infos.append(info)
            continue
        try:
            with ArchiveReader(path) as reader:
                info.meta = reader.meta
            # A compressed file's end can only be found by reading it through.
            summary = (None if check else read_summary(path)) or verify(path)
            info.tables, info.rows = summary["tables"], summary["rows"]
        except ArchiveError as exc:
            info.problem = str(exc)
        infos.append(info)
    return infos


def leftovers(folder: Path) -> list[Path]:
    """Partial files left by a backup that was killed; safe to delete."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.endswith(PARTIAL_SUFFIX))
