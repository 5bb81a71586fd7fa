"""What dbtools asks of the place backups are kept, and of a backup in it.

A store is a local folder (`local.LocalFolder`) or an S3 bucket
(`s3.S3Store`); a backup in it is a `local.LocalBackup` (a Path) or an
`s3.StoredBackup`. The rest of dbtools calls these methods and never asks
which kind it holds: adding a storage means adding one module here.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Collection
from pathlib import Path
from typing import IO, Protocol


class BackupRef(Protocol):
    """A finished backup file in a store."""

    @property
    def name(self) -> str: ...

    @property
    def size(self) -> int: ...

    def open_stream(self) -> IO[bytes]:
        """Its bytes, opened for reading."""
        ...

    def holds(self, backup: BackupRef) -> bool:
        """Whether this file, a `latest`, holds `backup`."""
        ...

    def newness(self) -> str | float:
        """Which of several `latest` copies is the newest: the larger."""
        ...

    def delete(self) -> None: ...

    def describe(self) -> str:
        """As the user would type it, for messages."""
        ...


class Sink(Protocol):
    """Where a backup is written: nothing can be listed or read until `commit()`."""

    def write(self, data: bytes) -> int: ...

    def flush(self) -> None: ...

    def commit(self) -> BackupRef: ...

    def abort(self) -> None: ...


class BackupStore(ABC):
    """A local folder or a bucket holding backups, side by side (no sub-folders)."""

    @property
    @abstractmethod
    def folder(self) -> Path | None:
        """The folder on this machine it is, or None: only there may a plaintext spool
        be written, and only there are names given with --output."""

    @abstractmethod
    def files(self) -> list[BackupRef]:
        """Every file directly in it."""

    @abstractmethod
    def get(self, name: str) -> BackupRef | None:
        """The file `name`, or None."""

    @abstractmethod
    def present(self, names: Collection[str]) -> list[BackupRef]:
        """Those of `names` that are there."""

    @abstractmethod
    def named(self, name: str) -> BackupRef | None:
        """The backup a user named (--file NAME) in it, or None."""

    @abstractmethod
    def taken(self, name: str) -> bool:
        """Whether a new backup cannot be given `name`."""

    @abstractmethod
    def prepare(self) -> list[str]:
        """Make it ready to be written to; returns warnings about where it is."""

    @abstractmethod
    def writer(self, name: str) -> Sink:
        """A sink that publishes the backup `name` whole, when committed, or not at all."""

    @abstractmethod
    def publish_copy(self, source: BackupRef, name: str) -> BackupRef | None:
        """Make `name` a copy of `source` (a `latest`); it appears whole or not at all."""

    @abstractmethod
    def leftovers(self) -> list[str]:
        """Names of what a killed backup left behind."""

    @abstractmethod
    def leftover_warning(self, name: str) -> str:
        """What listbackups says of one of `leftovers()`."""

    @abstractmethod
    def describe(self) -> str:
        """As the user would type it, for messages."""


# What a caller may name a backup or a store with: a path on this machine stands for a
# local backup or folder.
BackupFile = Path | BackupRef
Location = Path | BackupStore


def as_backup(backup: BackupFile | str) -> BackupRef:
    from .local import LocalBackup

    return LocalBackup(backup) if isinstance(backup, str | os.PathLike) else backup


def as_store(location: Location) -> BackupStore:
    from .local import LocalFolder

    return LocalFolder(location) if isinstance(location, os.PathLike) else location


def open_file(backup: BackupFile) -> IO[bytes]:
    return as_backup(backup).open_stream()
