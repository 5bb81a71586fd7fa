"""The one place that reads dbtools' settings: the DBTOOLS dict.

Every problem in it is found at once (`settings_problems`), so a project
fixes its settings in one go; the system check reports each on its own line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from .exceptions import ConfigurationError
from .migrate.checks.findings import acceptance_problem

KNOWN_KEYS = {
    "BACKUP_DIR",
    "STORAGE",
    "EXCLUDE",
    "KEEP",
    "KEEP_PRE_MIGRATE",
    "COMPRESS",
    "ENCRYPT_TO",
    "IDENTITY",
    "MAX_LINE_BYTES",
    "ACCEPT",
    "LOCK_TIMEOUT",
    "DEPLOY",
    "MIGRATE_DIFF_MAX_ROWS",
    # Read by dbtools.masking, which reports their problems itself.
    "MASK",
    "MASK_KEY",
    "SENSITIVE_FIELDS",
}
COMPRESSIONS = ("zstd", "gzip")
# From the numbers in docs/benchmarks.md: zstd is smaller and faster than gzip.
DEFAULT_COMPRESSION = "zstd"
DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024
SMALLEST_MAX_LINE_BYTES = 1024 * 1024
DEFAULT_LOCK_TIMEOUT = "5s"
# How a release reaches production, which decides what code runs against which
# schema while it migrates: the old code against the new schema (migrate-first),
# the new code against the old schema (code-first), or none (downtime).
DEPLOY_ORDERS = ("migrate-first", "code-first", "downtime")
DEFAULT_DEPLOY = "migrate-first"
# Above this many rows in the pre-migration backup, safemigrate does not diff
# it against the migrated database before asking to restore: the diff reads
# every row of both sides, about as long as the backup took.
DEFAULT_MIGRATE_DIFF_MAX_ROWS = 1_000_000
# PostgreSQL's lock_timeout syntax: a number, optionally with a unit; 0 turns it off.
LOCK_TIMEOUT = re.compile(r"\d+(\.\d+)?\s*(us|ms|s|min|h|d)?")


@dataclass(frozen=True)
class DbtoolsSettings:
    backup_dir: Path
    storage: str | None = None  # an alias of settings.STORAGES; None: backup_dir
    exclude: tuple[str, ...] = field(default_factory=tuple)
    keep: int | None = None
    keep_pre_migrate: int | None = None
    compress: str | None = None  # None, "gzip" or "zstd"
    encrypt_to: tuple[str, ...] = field(default_factory=tuple)  # age public keys
    identity: Path | None = None  # an age identity file, to read encrypted backups
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    accept: dict[str, dict[str, str]] = field(default_factory=dict)  # migration -> code -> reason
    lock_timeout: str = DEFAULT_LOCK_TIMEOUT
    deploy: str = DEFAULT_DEPLOY
    migrate_diff_max_rows: int = DEFAULT_MIGRATE_DIFF_MAX_ROWS
    sensitive_fields: tuple[str, ...] = ()  # "field" or "app_label.Model.field": never shown


def _raw() -> dict[str, Any]:
    value = getattr(settings, "DBTOOLS", None) or {}
    return dict(value) if isinstance(value, dict) else {"": value}


def settings_problems() -> list[str]:
    """Every problem with the DBTOOLS setting, one sentence each."""
    raw = _raw()
    if "" in raw:
        return [f"DBTOOLS must be a dict, not {type(raw['']).__name__}."]
    return [problem for check in SETTING_CHECKS for problem in check(raw)]


def _unknown_keys(raw: dict[str, Any]) -> Iterator[str]:
    unknown = set(raw) - KNOWN_KEYS
    if unknown:
        yield (
            f"Unknown DBTOOLS setting(s): {', '.join(sorted(unknown))}. "
            f"Known settings are {', '.join(sorted(KNOWN_KEYS))}."
        )


def _where_backups_go(raw: dict[str, Any]) -> Iterator[str]:
    backup_dir = raw.get("BACKUP_DIR")
    if backup_dir is not None and not isinstance(backup_dir, str | os.PathLike):
        yield f"DBTOOLS['BACKUP_DIR'] must be a path, not {backup_dir!r}."
    storage = raw.get("STORAGE")
    if storage is not None and not (isinstance(storage, str) and storage):
        yield (
            f"DBTOOLS['STORAGE'] must be the name of a storage in settings.STORAGES, such as "
            f"'backups', not {storage!r}."
        )


def _what_backups_hold(raw: dict[str, Any]) -> Iterator[str]:
    exclude = raw.get("EXCLUDE", [])
    if not isinstance(exclude, list | tuple) or not all(isinstance(x, str) for x in exclude):
        yield (
            f"DBTOOLS['EXCLUDE'] must be a list of app or model labels, such as "
            f"['sessions', 'auth.Permission'], not {exclude!r}."
        )
    for key in ("KEEP", "KEEP_PRE_MIGRATE"):
        keep = raw.get(key)
        if keep is not None and (type(keep) is not int or keep < 1):
            yield f"DBTOOLS[{key!r}] must be a whole number of 1 or more, not {keep!r}."
    compress = raw.get("COMPRESS", False)
    if compress not in (True, False, None, *COMPRESSIONS):
        yield (
            f"DBTOOLS['COMPRESS'] must be 'zstd', 'gzip', True ({DEFAULT_COMPRESSION}) or False, "
            f"not {compress!r}."
        )


def _encryption(raw: dict[str, Any]) -> Iterator[str]:
    encrypt_to = raw.get("ENCRYPT_TO", [])
    if isinstance(encrypt_to, str) or not (
        isinstance(encrypt_to, list | tuple)
        and all(isinstance(k, str) and k.strip().startswith("age1") for k in encrypt_to)
    ):
        yield (
            "DBTOOLS['ENCRYPT_TO'] must be a list of age public keys (each starts with age1; "
            f"`age-keygen` makes a pair), not {encrypt_to!r}."
        )
    identity = raw.get("IDENTITY")
    if identity is not None and not isinstance(identity, str | os.PathLike):
        yield f"DBTOOLS['IDENTITY'] must be the path of an age identity file, not {identity!r}."


def _max_line_bytes(raw: dict[str, Any]) -> Iterator[str]:
    max_line = raw.get("MAX_LINE_BYTES", DEFAULT_MAX_LINE_BYTES)
    if type(max_line) is not int or max_line < SMALLEST_MAX_LINE_BYTES:
        yield (
            f"DBTOOLS['MAX_LINE_BYTES'] must be a whole number of bytes, at least "
            f"{SMALLEST_MAX_LINE_BYTES:,}, not {max_line!r}."
        )


def _accepted_findings(raw: dict[str, Any]) -> Iterator[str]:
    accept = raw.get("ACCEPT", {})
    if not isinstance(accept, dict) or not all(isinstance(k, str) for k in accept):
        yield (
            "DBTOOLS['ACCEPT'] must be a dict of migrations to accepted findings, such as "
            "{'shop.0007_drop_legacy': {'DBT104': 'unused since release 3.2'}}, "
            f"not {accept!r}."
        )
        return
    for migration, accepted in accept.items():
        problem = acceptance_problem(accepted)
        if problem:
            yield f"DBTOOLS['ACCEPT'][{migration!r}] {problem}"


def _migrating(raw: dict[str, Any]) -> Iterator[str]:
    if problem := lock_timeout_problem(raw.get("LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT)):
        yield f"DBTOOLS['LOCK_TIMEOUT'] {problem}"
    if problem := deploy_problem(raw.get("DEPLOY", DEFAULT_DEPLOY)):
        yield f"DBTOOLS['DEPLOY'] {problem}"
    max_rows = raw.get("MIGRATE_DIFF_MAX_ROWS", DEFAULT_MIGRATE_DIFF_MAX_ROWS)
    if type(max_rows) is not int or max_rows < 0:
        yield (
            f"DBTOOLS['MIGRATE_DIFF_MAX_ROWS'] must be a whole number of rows, 0 or more, "
            f"not {max_rows!r}."
        )


def _sensitive_fields(raw: dict[str, Any]) -> Iterator[str]:
    value = raw.get("SENSITIVE_FIELDS", [])
    if isinstance(value, list | tuple) and all(isinstance(x, str) for x in value):
        return
    yield (
        "DBTOOLS['SENSITIVE_FIELDS'] must be a list of field names or app_label.Model.field "
        f"labels whose values are never shown, such as ['password'], not {value!r}."
    )


# In the order their problems are reported.
SETTING_CHECKS: tuple[Callable[[dict[str, Any]], Iterator[str]], ...] = (
    _unknown_keys,
    _where_backups_go,
    _what_backups_hold,
    _encryption,
    _max_line_bytes,
    _accepted_findings,
    _migrating,
    _sensitive_fields,
)


def deploy_problem(value: object) -> str | None:
    if value in DEPLOY_ORDERS:
        return None
    return f"must be one of {', '.join(repr(o) for o in DEPLOY_ORDERS)}, not {value!r}."


def compression_named(value: bool | str | None) -> str | None:
    """The compression a COMPRESS setting or compress= argument names (True: the default one)."""
    if value is True:
        return DEFAULT_COMPRESSION
    return value or None


def lock_timeout_problem(value: object) -> str | None:
    if isinstance(value, str) and LOCK_TIMEOUT.fullmatch(value.strip()):
        return None
    return f"must be a PostgreSQL duration such as '5s', '500ms' or '0' (off), not {value!r}."


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
        storage=raw.get("STORAGE"),
        exclude=tuple(raw.get("EXCLUDE", ())),
        keep=raw.get("KEEP"),
        keep_pre_migrate=raw.get("KEEP_PRE_MIGRATE"),
        compress=compression_named(raw.get("COMPRESS", False)),
        encrypt_to=tuple(k.strip() for k in raw.get("ENCRYPT_TO", ())),
        identity=Path(raw["IDENTITY"]) if raw.get("IDENTITY") else None,
        max_line_bytes=raw.get("MAX_LINE_BYTES", DEFAULT_MAX_LINE_BYTES),
        accept={k: dict(v) for k, v in raw.get("ACCEPT", {}).items()},
        lock_timeout=raw.get("LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT).strip(),
        deploy=raw.get("DEPLOY", DEFAULT_DEPLOY),
        migrate_diff_max_rows=raw.get("MIGRATE_DIFF_MAX_ROWS", DEFAULT_MIGRATE_DIFF_MAX_ROWS),
        sensitive_fields=tuple(raw.get("SENSITIVE_FIELDS", ())),
    )


def sensitive(label: str, names: Iterable[str]) -> frozenset[str]:
    """The names among `names` whose values DBTOOLS['SENSITIVE_FIELDS'] keeps from being shown."""
    listed = {s.lower() for s in get_settings().sensitive_fields}
    return frozenset(
        name for name in names if name.lower() in listed or f"{label}.{name}".lower() in listed
    )
