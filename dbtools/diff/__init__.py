"""diffdb: what changed between a backup and the database, or between two backups."""

from __future__ import annotations

from .flow import diff_database
from .report import DiffResult, RowExample, TableDiff

__all__ = ["DiffResult", "RowExample", "TableDiff", "diff_database"]
