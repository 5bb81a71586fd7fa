"""Pauses a command at a named phase, so a test can interrupt it exactly there.

Installed only in a manage.py subprocess whose environment sets
DBTOOLS_TEST_PAUSE_AT (tests/settings.py), never in the test run itself.
At the phase it writes its pid to DBTOOLS_TEST_PAUSED_FILE and sleeps, in
Python, where a signal is handled at once; the test then sends the signal.
The phases wrap functions of the core by name, so a rename fails every
fault test loudly instead of letting them pass without pausing.

  backup:rows         a batch of at least DBTOOLS_TEST_PAUSE_ROWS rows (default 1) was
                      written; a PostgreSQL reader thread holds the next batches
  backup:written      the backup file is complete, `latest` not yet updated
  restore:loaded      every row is loaded, inside the transaction, not yet checked
  restore:committed   the restore's transaction has committed
  migrate:applied     safemigrate's migrate applied one migration, before the next
  migrate:unapplied   a rollback's migrate unapplied one migration, before the next
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from django.apps import AppConfig

PAUSE_SECONDS = 60  # long enough for any test to signal; a forgotten pause still ends


def pause(phase: str) -> None:
    if os.environ.get("DBTOOLS_TEST_PAUSE_AT") != phase:
        return
    os.environ["DBTOOLS_TEST_PAUSE_AT"] = ""  # once per process
    Path(os.environ["DBTOOLS_TEST_PAUSED_FILE"]).write_text(str(os.getpid()))
    time.sleep(PAUSE_SECONDS)


def after(owner: Any, name: str, phase: str, when: Any = None) -> None:
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if when is None or when(*args, **kwargs):
            pause(phase)
        return result

    setattr(owner, name, wrapper)


def before(owner: Any, name: str, phase: str) -> None:
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        pause(phase)
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


class FaultsConfig(AppConfig):
    name = "tests.faults"
    label = "dbtools_test_faults"

    def ready(self) -> None:
        from django.db.migrations.executor import MigrationExecutor

        from dbtools import archive
        from dbtools.restore import flow as restore
        from dbtools.storage import local

        least = int(os.environ.get("DBTOOLS_TEST_PAUSE_ROWS") or 1)
        after(
            archive.ArchiveWriter, "write_rows", "backup:rows", lambda _w, rows: len(rows) >= least
        )
        before(local, "link_or_copy", "backup:written")
        before(restore, "check_references", "restore:loaded")
        before(restore, "announce", "restore:committed")
        after(MigrationExecutor, "apply_migration", "migrate:applied")
        after(MigrationExecutor, "unapply_migration", "migrate:unapplied")
