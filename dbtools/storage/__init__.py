"""Where backups live: the local backups folder, or a storage named in Django's STORAGES.

`DBTOOLS['STORAGE']` names an alias of `settings.STORAGES`. A FileSystemStorage
is its folder (local.py); django-storages' S3Storage is a bucket (s3.py). Both
are a `BackupStore` (base.py), and `catalog.py` says which backup in one is
`latest` and which ones retention deletes.

Any other storage backend is refused: the Storage API has no way to publish a
file atomically, so dbtools cannot keep its promise there.
"""

from __future__ import annotations

from django.conf import settings

from ..conf import get_settings
from ..exceptions import ConfigurationError
from .base import BackupFile, BackupRef, BackupStore, Location, as_backup, as_store, open_file
from .local import LocalBackup, LocalFolder
from .s3 import S3Store, StoredBackup, s3_storage_class

__all__ = [
    "BackupFile",
    "BackupRef",
    "BackupStore",
    "LocalBackup",
    "LocalFolder",
    "Location",
    "S3Store",
    "StoredBackup",
    "as_backup",
    "as_store",
    "backup_location",
    "open_file",
    "store_for",
]


def backup_location() -> BackupStore:
    """Where backups are written and looked for: DBTOOLS['STORAGE'], else BACKUP_DIR."""
    conf = get_settings()
    return store_for(conf.storage) if conf.storage else LocalFolder(conf.backup_dir)


def store_for(alias: str) -> BackupStore:
    """The folder or bucket that STORAGES[alias] is, or a one-line error."""
    from django.core.files.storage import FileSystemStorage, InvalidStorageError, storages

    try:
        storage = storages[alias]
    except InvalidStorageError:
        known = ", ".join(sorted(getattr(settings, "STORAGES", {}))) or "none"
        raise ConfigurationError(
            f"DBTOOLS['STORAGE'] is {alias!r}, which settings.STORAGES does not define "
            f"(it defines: {known}). Add it there, or remove DBTOOLS['STORAGE'] to use the "
            f"local backups folder."
        ) from None
    if isinstance(storage, FileSystemStorage):
        return LocalFolder(storage.location)
    s3_storage = s3_storage_class()
    if s3_storage is not None and isinstance(storage, s3_storage):
        return S3Store(alias, storage)
    raise ConfigurationError(
        f"STORAGES[{alias!r}] is a {type(storage).__module__}.{type(storage).__qualname__}; "
        f"dbtools writes backups to a FileSystemStorage or to django-storages' S3Storage "
        f"(AWS S3 or an S3-compatible server), where it can publish a backup only once it is "
        f"whole. Point DBTOOLS['STORAGE'] at one of those."
    )
