"""What changed since the pre-migration backup, shown before safemigrate asks
whether to restore (or restores with --restore always): the per-table summary
of a diff between that backup and the migrated database.

The diff maps the backup onto today's schema as a restore does, so a column
the migration added, removed or renamed is one schema change, not every row
changed. It is a help to the answer, never a condition for it: a backup above
DBTOOLS['MIGRATE_DIFF_MAX_ROWS'] is not compared, and a diff that fails says
so in one line; either way the question (or, when a restore would be
refused, the refusal) comes next.
"""

from __future__ import annotations

from django.db import DatabaseError

from ..backup import BackupResult
from ..conf import get_settings
from ..diff import diff_database
from ..diff.report import summary_lines
from ..exceptions import DbtoolsError
from .run import one_line


def changes_since_backup(backup: BackupResult, using: str) -> list[tuple[str, str]]:
    """The lines to show, each with its console style ('' or 'warning')."""
    limit = get_settings().migrate_diff_max_rows
    name = backup.path.name
    if backup.rows > limit:
        return [(
            f"Not compared with the backup: it holds {backup.rows:,} rows, more than "
            f"DBTOOLS['MIGRATE_DIFF_MAX_ROWS'] ({limit:,}). `manage.py diffdb --file {name}` "
            f"shows what changed since it.",
            "",
        )]  # fmt: skip
    try:
        result = diff_database(backup.path, using=using)
    except (DbtoolsError, DatabaseError, OSError) as exc:
        return [(f"Could not compare with the backup, so no summary: {one_line(exc)}", "warning")]
    if not result.differs:
        return [
            (f"Compared with the backup {name}: no difference in {len(result.tables)} tables.", "")
        ]
    lines = [(
        f"Compared with the backup {name}: {len(result.differing)} of {len(result.tables)} tables "
        f"differ (deleted: only in the backup; added: only in the database):",
        "",
    )]  # fmt: skip
    for table in result.differing:
        lines += [(f"  {line}", "") for line in summary_lines(table)]
    return lines
