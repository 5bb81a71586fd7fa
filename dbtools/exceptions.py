"""Errors the core raises. Commands turn them into CommandError in one place.

Every message is a full sentence that says what failed and what to do next.
"""

from __future__ import annotations


class DbtoolsError(Exception):
    """Base class: something the user can fix."""


class ConfigurationError(DbtoolsError):
    """Bad options or settings (unknown app label, bad DBTOOLS value)."""


class DatabaseUnavailable(DbtoolsError):
    """The database could not be reached."""


class BackupError(DbtoolsError):
    """The backup could not be written; nothing was kept."""


class ArchiveError(DbtoolsError):
    """A backup file is missing, unreadable, truncated, edited or not ours."""


class RestoreError(DbtoolsError):
    """The restore failed and was rolled back; the database is unchanged."""


class NeedsReplay(RestoreError):
    """Refused before writing anything: restored into today's schema the rows
    would be wrong or cannot be mapped, and a replay through the migrations
    since the backup can restore them."""


class MigrationError(DbtoolsError):
    """safemigrate could not go on."""
