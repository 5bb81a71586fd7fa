"""Backing up: the flow (flow.py), its checked options (options.py), where the
file goes (destination.py), and the row sources: one table at a time
(tables.py), through the ORM (rows.py) or PostgreSQL's own row lines and
helper connections (backends/pg_reads.py)."""

from __future__ import annotations

from .flow import BackupResult, applied_migrations, backup_database
from .options import BackupOptions
from .tables import TableReport

__all__ = ["BackupOptions", "BackupResult", "TableReport", "applied_migrations", "backup_database"]
