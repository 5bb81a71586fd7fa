"""What one backup is asked to do, checked once and completed from DBTOOLS['...']:
backupdb and the Python API both go through BackupOptions.build()."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..archive.envelope import recipients
from ..conf import COMPRESSIONS, compression_named, get_settings
from ..exceptions import ConfigurationError
from ..masking import Masker
from .masked import MASKED, masker_for
from .subset import SUBSET_LABEL, SubsetSpec, parse_subset

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


def check_keep(keep: int | None, mask: bool, subset: bool) -> None:
    """--keep prunes after a full backup; with --mask or a subset it would do nothing."""
    for asked, kind, option in ((mask, "masked", "--mask"), (subset, "subset", "--subset/--limit")):
        if asked and keep is not None:
            raise ConfigurationError(
                f"--keep deletes old full backups, and a {kind} backup is not one of them "
                f"(it never becomes latest); run --keep without {option}."
            )


@dataclass
class BackupOptions:
    """backup_database()'s keywords, checked when made, with DBTOOLS' defaults
    filled in (`exclude`, `keep`), so backupdb and the Python API agree.

    `compress` stays as given (a --output file name is checked against it);
    `compression` is what it resolves to. `sealed_to` holds the age
    recipients read from `encrypt_to` (None: DBTOOLS['ENCRYPT_TO']; empty: plain).
    `masker` is DBTOOLS['MASK'] read when `mask` is asked for (masked.py).
    `subset_spec` is what `subset`, `limit` and `with_children` ask for
    (subset.py), None for a full backup.
    """

    using: str = "default"
    output: str | Path | None = None
    only: Sequence[str] = ()
    exclude: Sequence[str] | None = None
    compress: bool | str | None = None
    keep: int | None = None
    include_unmanaged: bool = False
    label: str | None = None
    encrypt_to: Sequence[str] | None = None
    announce_result: bool = True
    jobs: int | None = None
    mask: bool = False
    subset: Sequence[str] = ()
    limit: Mapping[str, int] | Sequence[str] | None = None
    with_children: bool = False
    compression: str | None = field(init=False)
    sealed_to: list[Any] = field(init=False)
    keep_pre_migrate: int | None = field(init=False)
    masker: Masker | None = field(init=False)
    subset_spec: SubsetSpec | None = field(init=False)

    def __post_init__(self) -> None:
        """A one-line ConfigurationError for the first option that is wrong."""
        check_whole_number("--keep", self.keep)
        check_whole_number("--jobs", self.jobs)
        if self.label is not None and not LABEL.fullmatch(self.label):
            raise ConfigurationError(
                f"A backup's label goes into its file name: lower-case letters, digits and "
                f"dashes, starting with a letter, not {self.label!r}."
            )
        check_keep(self.keep, self.mask, bool(self.subset or self.limit))
        conf = get_settings()
        self.exclude = conf.exclude if self.exclude is None else self.exclude
        self.keep = conf.keep if self.keep is None else self.keep
        self.keep_pre_migrate = conf.keep_pre_migrate
        keys = conf.encrypt_to if self.encrypt_to is None else self.encrypt_to
        self.sealed_to = recipients(keys) if keys else []
        self.compression = wanted_compression(self.compress)
        self.subset_spec = parse_subset(self.subset, self.limit, self.with_children)
        if self.subset_spec:  # in the file name: never `latest`, never pruned
            self.label = f"{self.label}-{SUBSET_LABEL}" if self.label else SUBSET_LABEL
        self.masker = masker_for(self.mask)
        if self.mask:  # in the file name: retention never counts it
            self.label = f"{self.label}-{MASKED}" if self.label else MASKED

    @property
    def encrypted(self) -> bool:
        return bool(self.sealed_to)
