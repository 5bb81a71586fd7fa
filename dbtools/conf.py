"""The one place that reads dbtools' settings: the DBTOOLS dict."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from .exceptions import ConfigurationError

KNOWN_KEYS = {"BACKUP_DIR", "EXCLUDE", "KEEP", "COMPRESS"}


@dataclass(frozen=True)
class DbtoolsSettings:
    backup_dir: Path
    exclude: tuple[str, ...] = field(default_factory=tuple)
    keep: int | None = None
    compress: bool = False


def get_settings() -> DbtoolsSettings:
    raw: dict[str, Any] = dict(getattr(settings, "DBTOOLS", {}) or {})
    unknown = set(raw) - KNOWN_KEYS
    if unknown:
        raise ConfigurationError(
            f"Unknown DBTOOLS setting(s): {', '.join(sorted(unknown))}. "
            f"Known settings are {', '.join(sorted(KNOWN_KEYS))}."
        )
    base_dir = Path(getattr(settings, "BASE_DIR", Path.cwd()))
    backup_dir = Path(raw.get("BACKUP_DIR") or base_dir / "backups")
    if not backup_dir.is_absolute():
        backup_dir = base_dir / backup_dir
    keep = raw.get("KEEP")
    if keep is not None and (not isinstance(keep, int) or keep < 1):
        raise ConfigurationError(
            f"DBTOOLS['KEEP'] must be a whole number of 1 or more, not {keep!r}."
        )
    return DbtoolsSettings(
        backup_dir=backup_dir,
        exclude=tuple(raw.get("EXCLUDE", ())),
        keep=keep,
        compress=bool(raw.get("COMPRESS", False)),
    )
