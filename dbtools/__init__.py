"""dbtools: back up, restore and migrate a Django database without fear.

The Python API (docs/python-api.md); each name is imported on first use,
so `import dbtools` works before Django's apps are ready:

    from dbtools import backup_database, prepare_restore, restore_database
    result = backup_database(using="default", compress="zstd")
    restore_database(prepare_restore(result.path), mode="replace")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "backup_database": "dbtools.backup",
    "BackupResult": "dbtools.backup",
    "prepare_restore": "dbtools.restore.plan",
    "restore_database": "dbtools.restore.flow",
    "RestoreResult": "dbtools.restore.flow",
    "replay_restore": "dbtools.restore.replay",
    "plan_migrations": "dbtools.migrate.plan",
    "safe_migrate": "dbtools.migrate.flow",
    "SafeMigrateOptions": "dbtools.migrate.flow:Options",
    "list_backups": "dbtools.storage.catalog",
    "verify": "dbtools.archive",
    "drill": "dbtools.restore.drill",
    "diff_database": "dbtools.diff",
    "DiffResult": "dbtools.diff",
    "DrillResult": "dbtools.restore.drill",
    "identity_file": "dbtools.archive.envelope",
    "backup_location": "dbtools.storage",
    "backup_finished": "dbtools.signals",
    "restore_finished": "dbtools.signals",
    "DbtoolsError": "dbtools.exceptions",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        module, _, attribute = _API[name].partition(":")
        return getattr(importlib.import_module(module), attribute or name)
    raise AttributeError(f"module 'dbtools' has no attribute {name!r}")
