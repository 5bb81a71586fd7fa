"""Errors the core raises. Commands turn them into CommandError in one place.

Every message is a full sentence that says what failed and what to do next.
An error carries its parts as fields (`problem`, `fix`, `changed`) and
str() renders them into that one line, here and nowhere else, so a caller
can ask whether anything was changed without reading the text.
"""

from __future__ import annotations

UNCHANGED = "Nothing was changed."
ROLLED_BACK = "Nothing was changed: the restore was rolled back."


class DbtoolsError(Exception):
    """Base class: something the user can fix.

    `problem` says what failed, `fix` what to do, `changed` whether anything
    was changed (None: not this error's to say); `rolled_back` says that
    nothing was changed because the restore's transaction was rolled back;
    `details`, lines listed below the message (each problem of several).
    """

    def __init__(
        self,
        problem: str = "",
        *,
        fix: str = "",
        changed: bool | None = None,
        rolled_back: bool = False,
        details: tuple[str, ...] = (),
    ) -> None:
        self.problem = problem
        self.fix = fix
        self.details = details
        self.changed = False if rolled_back else changed
        self.rolled_back = rolled_back
        super().__init__(problem)

    @property
    def state(self) -> str:
        """What the failure left, as a sentence ("" when not known here)."""
        if self.rolled_back:
            return ROLLED_BACK
        return UNCHANGED if self.changed is False else ""

    def __str__(self) -> str:
        return "\n".join([render(self.problem, self.state, self.fix), *self.details])


def render(problem: str, state: str, fix: str) -> str:
    """One message from its parts. A part after one that ends in ";" goes on
    its sentence (first letter lower-case); a fix that starts lower-case goes
    on the state's."""
    text = problem
    if state and fix[:1].islower():
        state = state[:-1] + ";"
    for part in (state, fix):
        if not part:
            continue
        if text.endswith(";"):
            part = part[:1].lower() + part[1:]
        text = f"{text} {part}" if text else part
    return text


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
