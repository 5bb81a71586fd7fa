"""What one backup is asked to do, checked once and completed from DBTOOLS['...']:
backupdb and the Python API both go through BackupOptions.build()."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..archive.envelope import recipients
from ..conf import COMPRESSIONS, compression_named, get_settings
from ..exceptions import ConfigurationError

# A label goes into the file name: catalog.TIMESTAMPED reads it back.
LABEL = re.compile(r"[a-z][a-z0-9-]*")


def wanted_compression(compress: bool | str | None) -> str | None:
    """The compression asked for (None: DBTOOLS['COMPRESS']), or a one-line error."""
    if compress not in (None, True, False, *COMPRESSIONS):
        raise ConfigurationError(
            f"Unknown compression {compress!r}; choose {' or '.join(COMPRESSIONS)}."
        )
    return get_settings().compress if compress is None else compression_named(compress)


def check_whole_number(option: str, value: object) -> None:
    if value is not None and (type(value) is not int or value < 1):
        raise ConfigurationError(f"{option} must be a whole number of 1 or more, not {value!r}.")


@dataclass(frozen=True)
class BackupOptions:
    """backup_database()'s keywords, checked, with DBTOOLS' defaults filled in.

    `compress` is as given (a --output file name is checked against it);
    `compression` is what it resolves to. `sealed_to` holds the age
    recipients read from `encrypt_to` (empty: a plain backup).
    """

    using: str
    output: str | Path | None
    only: Sequence[str]
    exclude: Sequence[str]
    compress: bool | str | None
    compression: str | None
    keep: int | None
    keep_pre_migrate: int | None
    include_unmanaged: bool
    label: str | None
    sealed_to: list[Any]
    announce_result: bool
    jobs: int | None

    @property
    def encrypted(self) -> bool:
        return bool(self.sealed_to)

    @classmethod
    def build(
        cls,
        *,
        using: str = "default",
        output: str | Path | None = None,
        only: Sequence[str] = (),
        exclude: Sequence[str] | None = None,
        compress: bool | str | None = None,
        keep: int | None = None,
        include_unmanaged: bool = False,
        label: str | None = None,
        encrypt_to: Sequence[str] | None = None,
        announce_result: bool = True,
        jobs: int | None = None,
    ) -> BackupOptions:
        """The options, or a one-line ConfigurationError for the first that is wrong."""
        check_whole_number("--keep", keep)
        check_whole_number("--jobs", jobs)
        if label is not None and not LABEL.fullmatch(label):
            raise ConfigurationError(
                f"A backup's label goes into its file name: lower-case letters, digits and "
                f"dashes, starting with a letter, not {label!r}."
            )
        conf = get_settings()
        keys = conf.encrypt_to if encrypt_to is None else encrypt_to
        sealed_to = recipients(keys) if keys else []
        return cls(
            using=using,
            output=output,
            only=only,
            exclude=conf.exclude if exclude is None else exclude,
            compress=compress,
            compression=wanted_compression(compress),
            keep=conf.keep if keep is None else keep,
            keep_pre_migrate=conf.keep_pre_migrate,
            include_unmanaged=include_unmanaged,
            label=label,
            sealed_to=sealed_to,
            announce_result=announce_result,
            jobs=jobs,
        )
