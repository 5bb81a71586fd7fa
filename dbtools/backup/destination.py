"""Where a backup goes and what it is called: a bucket (DBTOOLS['STORAGE']), the
backups folder, or --output, a folder or a file whose name must match the
compression and encryption asked for."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from ..archive.envelope import AGE_SUFFIX, SUFFIXES, backup_suffix, file_suffix
from ..conf import COMPRESSIONS, get_settings
from ..exceptions import ConfigurationError
from ..storage import BackupStore, LocalFolder, backup_location
from ..storage.catalog import new_name
from .options import BackupOptions, wanted_compression

# An encrypted --only backup says so in its name: retention cannot read its header without the key.
PARTIAL = "partial"


@dataclass(frozen=True)
class Destination:
    store: BackupStore
    name: str
    compression: str | None
    in_folder: bool  # a backups folder (or bucket) that keeps `latest` and retention


def choose_destination(options: BackupOptions, now: datetime.datetime) -> Destination:
    """--output is always a local file; otherwise DBTOOLS['STORAGE'] or the backups folder."""
    location = backup_location() if options.output is None else None
    store: BackupStore
    if location is not None and location.folder is None:  # a bucket: no --output names there
        store, compression, in_folder = location, options.compression, True
        name = new_name(now, file_suffix(compression, options.encrypted), location.taken)
    else:
        path, compression, in_folder = resolve_output(
            options.output,
            options.compress,
            now,
            options.encrypted,
            folder=location.folder if location else None,
        )
        store, name = LocalFolder(path.parent), path.name
    label = options.label
    if in_folder and options.encrypted and options.only:
        label = f"{label}-{PARTIAL}" if label else PARTIAL
    if label and in_folder:
        name = name.replace("db-backup-", f"db-backup-{label}-", 1)
    return Destination(store, name, compression, in_folder)


def resolve_output(
    output: str | Path | None,
    compress: bool | str | None,
    now: datetime.datetime,
    encrypt: bool,
    folder: Path | None = None,
) -> tuple[Path, str | None, bool]:
    """(file to write, its compression, is it in a backups folder that keeps `latest`?).

    A file name given with --output decides the compression by its suffix;
    without one, the backup goes in `folder` (default: DBTOOLS['BACKUP_DIR']).
    """
    wanted = wanted_compression(compress)
    target = Path(output) if output else folder or get_settings().backup_dir
    suffix = backup_suffix(target.name)
    if suffix:
        named = next((c for c in COMPRESSIONS if SUFFIXES[c] in suffix), None)
        if compress not in (None, False) and wanted != named:
            raise ConfigurationError(
                f"--compress {wanted} writes {file_suffix(wanted, encrypt)}, but {target.name} "
                f"does not end so; name the file {target.name.removesuffix(suffix)}"
                f"{file_suffix(wanted, encrypt)}, or leave out --compress."
            )
        if suffix.endswith(AGE_SUFFIX) != encrypt:
            raise ConfigurationError(
                f"{target.name} "
                + (
                    f"ends in {AGE_SUFFIX}, but DBTOOLS['ENCRYPT_TO'] is empty, so it would not be "
                    f"encrypted; set it, or leave {AGE_SUFFIX} out of the name."
                    if not encrypt
                    else f"would be encrypted (DBTOOLS['ENCRYPT_TO'] is set) but does not end in "
                    f"{AGE_SUFFIX}; name it {target.name}{AGE_SUFFIX}."
                )
            )
        return target, named, False
    if output and target.suffix and not target.is_dir():
        allowed = [file_suffix(c, encrypt) for c in (None, *COMPRESSIONS)]
        raise ConfigurationError(
            f"--output {output} names a file (its name has a suffix), but a backup file's name "
            f"ends in {', '.join(allowed[:-1])} or {allowed[-1]}; name it "
            f"{target.stem.removesuffix('.json')}{file_suffix(wanted, encrypt)}, or, for a "
            f"folder of that name, create it first."
        )
    return (
        target / new_name(now, file_suffix(wanted, encrypt), lambda n: (target / n).exists()),
        wanted,
        True,
    )
