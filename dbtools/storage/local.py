"""Backups in a folder on this machine: each is a file, written beside its final name
and renamed into place when whole, so a listing never shows a partial backup."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Collection
from pathlib import Path
from typing import IO, Any

from django.conf import settings

from ..exceptions import BackupError
from .base import BackupRef, BackupStore

PARTIAL_SUFFIX = ".partial"


class LocalBackup(Path):
    """A backup file on this machine: a Path, and a BackupRef."""

    def with_segments(self, *pathsegments: Any) -> Path:  # type: ignore[override]
        return Path(*pathsegments)  # a path made from this one (its folder, say) is no backup

    @property
    def size(self) -> int:
        return self.stat().st_size

    def open_stream(self) -> IO[bytes]:
        return open(self, "rb")

    def holds(self, backup: BackupRef) -> bool:
        return isinstance(backup, Path) and (
            backup.samefile(self) or _same_bytes_at_start(backup, self)
        )

    def newness(self) -> float:
        return self.stat().st_mtime

    def delete(self) -> None:
        self.unlink(missing_ok=True)  # a second run at once may have deleted it first

    def describe(self) -> str:
        return relative(self)


def _same_bytes_at_start(a: Path, b: Path) -> bool:
    """Where the filesystem has no hard links, `latest` is a byte-for-byte copy. Its
    first bytes hold the backup's random id (or, encrypted, its random file key), so
    equal sizes and equal starts tell the copy from another backup."""
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as x, open(b, "rb") as y:
        return x.read(64 * 1024) == y.read(64 * 1024)


def relative(path: Path) -> str:
    """A path as the user would type it: relative to the current folder when inside it."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)


class LocalFolder(Path, BackupStore):
    """A folder of backups on this machine: a Path, and a BackupStore."""

    def with_segments(self, *pathsegments: Any) -> Path:  # type: ignore[override]
        return Path(*pathsegments)  # a path made from this one is a file in it, or elsewhere

    @property
    def folder(self) -> Path:
        return Path(self)

    def files(self) -> list[BackupRef]:
        if not self.is_dir():
            return []
        # is_file(): a dangling link (or a folder) with a backup's name is no backup.
        return [LocalBackup(p) for p in self.iterdir() if p.is_file()]

    def get(self, name: str) -> LocalBackup | None:
        path = LocalBackup(self, name)
        return path if path.is_file() else None

    def present(self, names: Collection[str]) -> list[BackupRef]:
        return [found for name in names if (found := self.get(name))]

    def named(self, name: str) -> LocalBackup | None:
        path = LocalBackup(self, name)
        return path if path.exists() else None

    def taken(self, name: str) -> bool:
        return (self / name).exists()

    def prepare(self) -> list[str]:
        prepare_folder(self)
        return [w for w in [git_exposure(self), served_exposure(self)] if w]

    def writer(self, name: str) -> LocalSink:
        return LocalSink(self / name)

    def publish_copy(self, source: BackupRef, name: str) -> LocalBackup:
        target = LocalBackup(self, name)
        link_or_copy(self / source.name, target)  # `source` was written here
        return target

    def leftovers(self) -> list[str]:
        if not self.is_dir():
            return []
        return sorted(p.name for p in self.iterdir() if p.name.endswith(PARTIAL_SUFFIX))

    def leftover_warning(self, name: str) -> str:
        return f"  {name}: left by a backup that was interrupted; safe to delete."

    def describe(self) -> str:
        return relative(self)


def partial_path(final: Path) -> Path:
    """A hidden name in the same folder that no one takes for a finished backup."""
    return final.with_name(f".{final.name}.{os.getpid()}{PARTIAL_SUFFIX}")


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not possible on every platform; rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_private(path: Path) -> IO[bytes]:
    # O_EXCL: never through a link or into a file someone else made first.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    return os.fdopen(fd, "wb")


class LocalSink:
    """A private temporary file beside `final`; `commit()` fsyncs it and renames it into place."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.temp = partial_path(final)
        self.file = create_private(self.temp)

    def write(self, data: bytes) -> int:
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()

    def commit(self) -> LocalBackup:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.temp, self.final)
        fsync_dir(self.final.parent)
        return LocalBackup(self.final)

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # a broken stream: the file goes anyway
            self.file.close()
        self.temp.unlink(missing_ok=True)


def link_or_copy(source: Path, target: Path) -> None:
    """Make `target` hold the same bytes as `source`, atomically.

    A hard link costs nothing; where the filesystem has none, copy and fsync.
    """
    temp = partial_path(target)
    temp.unlink(missing_ok=True)
    try:  # an error or an interrupt on the way leaves no temporary file
        try:
            os.link(source, temp)
        except OSError:
            try:
                with open(source, "rb") as src, create_private(temp) as dst:
                    shutil.copyfileobj(src, dst, 1024 * 1024)
                    dst.flush()
                    os.fsync(dst.fileno())
            except OSError as exc:
                raise BackupError(f"Could not write {target.name}: {exc.strerror or exc}.") from exc
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def prepare_folder(folder: Path) -> None:
    try:
        if not folder.exists():
            folder.mkdir(parents=True, mode=0o700)
    except OSError as exc:
        raise BackupError(
            f"Cannot create the backup folder {folder}: {exc.strerror or exc}. "
            f"Choose another with --output or DBTOOLS['BACKUP_DIR']."
        ) from exc
    if not folder.is_dir():
        raise BackupError(f"{folder} is not a folder; choose another with --output.")


def git_exposure(folder: Path) -> str | None:
    """A warning if backups here could be committed by accident."""
    try:
        inside = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--is-inside-work-tree"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if inside.returncode != 0 or inside.stdout.strip() != "true":
            return None
        probe = folder / "db-backup-probe.json"
        ignored = subprocess.run(
            ["git", "-C", str(folder), "check-ignore", "-q", str(probe)],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if ignored.returncode == 0:
        return None
    return (
        f"The backup folder {folder} is inside a git work tree and git does not ignore it: "
        f"backups hold personal data and must never be committed. Add it to .gitignore."
    )


def served_exposure(folder: Path) -> str | None:
    """A warning if the site itself serves files from the backup folder (MEDIA_ROOT,
    STATIC_ROOT): a backup there could be downloaded by anyone who guesses its name."""
    for setting in ("MEDIA_ROOT", "STATIC_ROOT"):
        root = getattr(settings, setting, None)
        if root and folder.resolve().is_relative_to(Path(root).resolve()):
            return (
                f"The backup folder {folder} is inside {setting} ({root}), which the site serves: "
                f"backups hold personal data. Give them a folder or storage of their own."
            )
    return None
