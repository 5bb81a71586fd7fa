"""What changed since the pre-migration backup, shown before safemigrate asks
whether to restore (or restores with --restore always): the per-table summary
of a diff between that backup and the migrated database.

The diff maps the backup onto today's schema as a restore does, so a column
the migration added, removed or renamed is one schema change, not every row
changed. It is a help to the answer, never a condition for it: a backup, or
the database's rows of the tables it covers, above
DBTOOLS['MIGRATE_DIFF_MAX_ROWS'] is not compared, and a diff that fails, for
whatever reason, says so in one line; either way the question (or, when a
restore would be refused, the refusal) comes next.
"""

from __future__ import annotations

from django.db import DatabaseError, connections

from ..backends import backend_for
from ..backup import BackupResult
from ..conf import get_settings
from ..diff import diff_database
from ..diff.report import DiffResult, summary_lines
from ..exceptions import DbtoolsError
from .run import one_line


def changes_since_backup(
    backup: BackupResult, using: str, restorable: bool = True
) -> list[tuple[str, str]]:
    """The lines to show, each with its console style ('' or 'warning').
    `restorable`: the restore is possible, so what a merge would do is said
    (when it would be refused, the refusal says so instead)."""
    name = backup.path.name
    try:
        if too_many := over_the_bound(backup, using):
            return [(
                f"Not compared with the backup: {too_many}. `manage.py diffdb --file {name}` "
                f"shows what changed since it.",
                "",
            )]  # fmt: skip
        result = diff_database(backup.path, using=using)
    except (DbtoolsError, DatabaseError, OSError) as exc:
        return [(f"Could not compare with the backup, so no summary: {one_line(exc)}", "warning")]
    except Exception as exc:  # the summary is a help: an unforeseen failure must not end the run
        return [(
            f"Could not compare with the backup, so no summary ({type(exc).__name__}: "
            f"{one_line(exc)}).",
            "warning",
        )]  # fmt: skip
    if not result.differs:
        return [
            (f"Compared with the backup {name}: no difference in {len(result.tables)} tables.", "")
        ]
    lines = [(
        f"Compared with the backup {name}: {len(result.differing)} of {len(result.tables)} tables "
        f"differ (deleted: only in the backup; added: only in the database):",
        "",
    )]  # fmt: skip
    if restorable:
        lines.append((what_a_merge_would_do(result), ""))
    for table in result.differing:
        lines += [(f"  {line}", "") for line in summary_lines(table)]
    return lines


def over_the_bound(backup: BackupResult, using: str) -> str:
    """Why the diff is not made, or '': it reads the backup's rows and the
    database's rows of the same tables, so both count against the bound."""
    limit = get_settings().migrate_diff_max_rows
    bound = f"DBTOOLS['MIGRATE_DIFF_MAX_ROWS'] ({limit:,})"
    if backup.rows > limit:
        return f"it holds {backup.rows:,} rows, more than {bound}"
    connection = connections[using]
    existing = set(connection.introspection.table_names())
    db_tables = [table.db_table for table in backup.tables if table.db_table in existing]
    if backend_for(connection).rows_up_to(db_tables, limit) > limit:
        return f"the database's tables it covers hold more than {bound} rows"
    return ""


def what_a_merge_would_do(result: DiffResult) -> str:
    """From the counts the diff made: a merge inserts the rows only in the
    backup and never updates a row that is there."""
    compared = [table for table in result.tables if table.compared]
    deleted = sum(table.only_in_backup for table in compared)
    changed = sum(table.changed for table in compared)
    text = (
        f"A restore (merge) would put back {rows(deleted)} deleted since the backup"
        if deleted
        else "A restore (merge) would put back no rows: none was deleted since the backup"
    )
    if changed:
        stay = "it is" if changed == 1 else "they are"
        text += f"; {rows(changed)} changed since would stay as {stay} (a merge never updates)"
    text += "."
    if skipped := [table.label for table in result.tables if not table.compared]:
        text += f" Rows not compared in {', '.join(skipped)}."
    return text


def rows(n: int) -> str:
    return f"{n:,} row" if n == 1 else f"{n:,} rows"
