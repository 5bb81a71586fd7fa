"""The backups in a folder or store: how they are named, which one `latest` is, which
ones retention deletes, what each holds, are they whole."""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..archive import ArchiveReader, verify
from ..archive.envelope import AGE_SUFFIX, can_decrypt, file_suffix, is_encrypted
from ..conf import COMPRESSIONS
from ..display import shown
from ..exceptions import ArchiveError, ConfigurationError
from . import backup_location
from .base import BackupFile, BackupRef, BackupStore, Location, as_backup, as_store

# Names --------------------------------------------------------------------------

LATEST_STEM = "db-backup-latest"
LATEST_SUFFIXES = sorted({file_suffix(c, e) for c in (None, *COMPRESSIONS) for e in (False, True)})
# db-backup-[<label>-]<UTC time>[-<n>].json[.gz|.zst][.age]; the label is e.g. "pre-migrate".
TIMESTAMPED = re.compile(
    r"^db-backup-(?:(?P<label>[a-z][a-z0-9-]*?)-)?(?P<time>\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z)"
    r"(?:-(?P<n>\d+))?\.json(?:\.gz|\.zst)?(?:\.age)?$"
)
PRE_MIGRATE = "pre-migrate"


def timestamp(now: datetime.datetime) -> str:
    now = now.astimezone(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H-%M-%S-") + f"{now.microsecond // 1000:03d}Z"


def new_name(now: datetime.datetime, suffix: str, taken: Callable[[str], bool]) -> str:
    name = f"db-backup-{timestamp(now)}{suffix}"
    n = 2
    while taken(name):  # two backups in one millisecond
        name = f"db-backup-{timestamp(now)}-{n}{suffix}"
        n += 1
    return name


# Latest -------------------------------------------------------------------------


def latest_files(store: BackupStore) -> list[BackupRef]:
    """The `latest` copies in a folder or store (one, normally; one per suffix at worst)."""
    return store.present([LATEST_STEM + s for s in LATEST_SUFFIXES])


def current_latest(location: Location) -> BackupRef | None:
    """`latest`: what restoredb restores by default, what listbackups marks, what
    pruning never deletes. The newest `latest` copy, if several were left (their
    names differ by suffix only; a backup killed between publishing one and
    deleting the others leaves two)."""
    return max(latest_files(as_store(location)), key=lambda f: f.newness(), default=None)


def older_latest(store: BackupStore, name: str) -> list[BackupRef]:
    """The `latest` copies other than `name`, which a backup that made `name` deletes."""
    return [f for f in latest_files(store) if f.name != name]


def timestamped_backups(location: Location) -> list[BackupRef]:
    """Finished, timestamped backups in a folder or store, newest first."""
    found = [(m, f) for f in as_store(location).files() if (m := TIMESTAMPED.match(f.name))]
    found.sort(key=lambda item: (item[0]["time"], int(item[0]["n"] or 1)), reverse=True)
    return [f for _, f in found]


def resolve_backup(
    name: str | BackupFile | None, folder: Location | None = None, option: str = "--file"
) -> BackupRef:
    """--file NAME: a path, or a name in the backups folder or store (or `folder`);
    default: latest."""
    if name is not None and not isinstance(name, str | os.PathLike):
        return name  # found already
    store = backup_location() if folder is None else as_store(folder)
    if name is None:
        latest = current_latest(store)
        if latest is None:
            raise ArchiveError(
                f"There is no backup to restore in {shown(store)} (no db-backup-latest.json). "
                f"Make one with `manage.py backupdb`, or name a file with {option}."
            )
        return latest
    path = Path(name)
    if path.exists():
        return as_backup(path)
    found = store.named(str(name))
    if found is not None:
        return found
    raise ArchiveError(
        f"Backup file {name} was not found (looked in the current folder and in "
        f"{shown(store)}). `manage.py listbackups` shows the backups there."
    )


# Retention ----------------------------------------------------------------------


def retention_group(path: BackupRef) -> str | None:
    """Which count a backup belongs to: "full", "pre-migrate", or None for one
    that retention never deletes (a partial --only, subset or masked backup,
    one with another label, one whose header cannot be read)."""
    match = TIMESTAMPED.match(path.name)
    if match is None or match["label"] not in (None, PRE_MIGRATE):
        return None
    if path.name.endswith(AGE_SUFFIX) and not can_decrypt():
        return match["label"] or "full"  # an encrypted --only backup is named db-backup-partial-…
    try:
        with ArchiveReader(path) as reader:
            # The header, not the name: a file named by an older version (or
            # renamed) is still never counted as a whole backup.
            partial = any(reader.meta.get(key) for key in ("only", "subset", "masked"))
    except (ArchiveError, OSError, ConfigurationError):
        return None
    if partial:
        return None
    return match["label"] or "full"


def prune(
    location: Location, keep: int | None, keep_pre_migrate: int | None = None
) -> list[BackupRef]:
    """Delete all but the `keep` newest full backups and, counted apart, the
    `keep_pre_migrate` newest pre-migration ones (None: keep them all).
    Never a partial or unreadable backup, never the one `latest` holds."""
    limits = {"full": keep, PRE_MIGRATE: keep_pre_migrate}
    seen = {"full": 0, PRE_MIGRATE: 0}
    latest = current_latest(location)
    removed = []
    for path in timestamped_backups(location):  # newest first
        group = retention_group(path)
        if group is None:
            continue
        seen[group] += 1
        limit = limits[group]
        if limit is None or seen[group] <= limit or (latest and latest.holds(path)):
            continue
        path.delete()
        removed.append(path)
    return removed


# Listing ------------------------------------------------------------------------


@dataclass
class BackupInfo:
    path: BackupRef
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


def read_summary(path: BackupRef) -> dict[str, Any] | None:
    """The summary line of an uncompressed backup, read from its end (cheap)."""
    with path.open_stream() as f:
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
        is_latest = latest is not None and latest.holds(path)
        infos.append(describe(path, is_latest, check))
    if latest is not None and not any(info.is_latest for info in infos):
        infos.insert(0, describe(latest, True, check))
    return infos


def describe(path: BackupRef, is_latest: bool, check: bool) -> BackupInfo:
    info = BackupInfo(path, path.size, None, None, None, is_latest)
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
    return as_store(folder).leftovers()
