"""The one place that reads dbtools' settings: the DBTOOLS dict.

Every problem in it is found at once (`settings_problems`), so a project
fixes its settings in one go; the system check reports each on its own line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from .exceptions import ConfigurationError

KNOWN_KEYS = {"BACKUP_DIR", "EXCLUDE", "KEEP", "KEEP_PRE_MIGRATE", "COMPRESS", "MAX_LINE_BYTES"}
DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024
SMALLEST_MAX_LINE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class DbtoolsSettings:
    backup_dir: Path
    exclude: tuple[str, ...] = field(default_factory=tuple)
    keep: int | None = None
    keep_pre_migrate: int | None = None
    compress: bool = False
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES


def _raw() -> dict[str, Any]:
    value = getattr(settings, "DBTOOLS", None) or {}
    return dict(value) if isinstance(value, dict) else {"": value}


def settings_problems() -> list[str]:
    """Every problem with the DBTOOLS setting, one sentence each."""
    raw = _raw()
    if "" in raw:
        return [f"DBTOOLS must be a dict, not {type(raw['']).__name__}."]
    problems = []
    unknown = set(raw) - KNOWN_KEYS
    if unknown:
        problems.append(
            f"Unknown DBTOOLS setting(s): {', '.join(sorted(unknown))}. "
            f"Known settings are {', '.join(sorted(KNOWN_KEYS))}."
        )
    backup_dir = raw.get("BACKUP_DIR")
    if backup_dir is not None and not isinstance(backup_dir, str | os.PathLike):
        problems.append(f"DBTOOLS['BACKUP_DIR'] must be a path, not {backup_dir!r}.")
    exclude = raw.get("EXCLUDE", [])
    if not isinstance(exclude, list | tuple) or not all(isinstance(x, str) for x in exclude):
        problems.append(
            f"DBTOOLS['EXCLUDE'] must be a list of app or model labels, such as "
            f"['sessions', 'auth.Permission'], not {exclude!r}."
        )
    for key in ("KEEP", "KEEP_PRE_MIGRATE"):
        keep = raw.get(key)
        if keep is not None and (type(keep) is not int or keep < 1):
            problems.append(f"DBTOOLS[{key!r}] must be a whole number of 1 or more, not {keep!r}.")
    compress = raw.get("COMPRESS", False)
    if not isinstance(compress, bool):
        problems.append(f"DBTOOLS['COMPRESS'] must be True or False, not {compress!r}.")
    max_line = raw.get("MAX_LINE_BYTES", DEFAULT_MAX_LINE_BYTES)
    if type(max_line) is not int or max_line < SMALLEST_MAX_LINE_BYTES:
        problems.append(
            f"DBTOOLS['MAX_LINE_BYTES'] must be a whole number of bytes, at least "
            f"{SMALLEST_MAX_LINE_BYTES:,}, not {max_line!r}."
        )
    return problems


def get_settings() -> DbtoolsSettings:
    problems = settings_problems()
    if problems:
        raise ConfigurationError(" ".join(problems))
    raw = _raw()
    base_dir = Path(getattr(settings, "BASE_DIR", Path.cwd()))
    backup_dir = Path(raw.get("BACKUP_DIR") or base_dir / "backups")
    if not backup_dir.is_absolute():
        backup_dir = base_dir / backup_dir
    return DbtoolsSettings(
        backup_dir=backup_dir,
        exclude=tuple(raw.get("EXCLUDE", ())),
        keep=raw.get("KEEP"),
        keep_pre_migrate=raw.get("KEEP_PRE_MIGRATE"),
        compress=raw.get("COMPRESS", False),
        max_line_bytes=raw.get("MAX_LINE_BYTES", DEFAULT_MAX_LINE_BYTES),
    )
