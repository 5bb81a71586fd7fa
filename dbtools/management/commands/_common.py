"""What the dbtools commands share: the base command and display helpers. No logic lives here."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from django.core.management.base import BaseCommand, CommandError, OutputWrapper
from django.db import DatabaseError

import dbtools
from dbtools._compat import underlying_stream
from dbtools.archive.envelope import identity_exposure, identity_file
from dbtools.display import sentence, shown
from dbtools.exceptions import UNCHANGED, DbtoolsError
from dbtools.interrupts import exit_status, one_line, signals_raise
from dbtools.progress import ProgressBar
from dbtools.restore.scratch import remove_leftover_folders

__all__ = [
    "DbtoolsCommand",
    "add_compress_argument",
    "add_file_argument",
    "add_identity_argument",
    "database_error",
    "progress_bar",
    "shown",
    "size",
]


class DbtoolsCommand(BaseCommand):
    """dbtools' version for --version, and every expected failure as one line
    (CommandError) rather than a traceback; --traceback still shows the cause.

    Run from the shell, SIGINT and SIGTERM end the command the same way: the
    interrupt unwinds and cleans up as an error does, then one line says what
    state it left (what the core told, else `interrupted`), and the exit
    status is 130 or 143 (dbtools.interrupts). Called from Python, the
    KeyboardInterrupt reaches the caller as it is."""

    # What is true when the command is interrupted and the core told nothing more.
    interrupted = UNCHANGED
    # The exit status of an expected failure; diffdb, like diff(1), keeps 1 for "they differ".
    error_status = 1
    # Set where an unexpected error, too, must end in one line and error_status,
    # not a traceback and exit status 1 (diffdb): "… could not be made".
    unexpected_failure = ""

    def get_version(self) -> str:
        return dbtools.__version__

    def execute(self, *args: Any, **options: Any) -> Any:
        # execute() is where Django takes call_command's stderr=; not yet.
        err = OutputWrapper(options["stderr"]) if options.get("stderr") else self.stderr
        removed = remove_leftover_folders()
        if removed:
            err.write(
                f"Removed {len(removed)} temporary folder(s) left by a dbtools run that was "
                f"killed (they may have held the plaintext rows of a backup): {', '.join(removed)}."
            )
        from_shell = getattr(self, "_called_from_command_line", False)
        try:
            with (
                signals_raise() if from_shell else nullcontext(),
                identity_file(options.get("identity")),
            ):
                if exposure := identity_exposure():
                    err.write(f"WARNING: {exposure}")
                return super().execute(*args, **options)
        except DbtoolsError as exc:
            raise CommandError(str(exc), returncode=self.error_status) from exc
        except DatabaseError as exc:
            raise CommandError(database_error(exc), returncode=self.error_status) from exc
        except CommandError:
            raise
        except Exception as exc:
            if not self.unexpected_failure:
                raise
            cause = " ".join(str(exc).split())
            raise CommandError(
                f"{self.unexpected_failure} ({type(exc).__name__}: {cause}). {self.interrupted}",
                returncode=self.error_status,
            ) from exc
        except KeyboardInterrupt as exc:
            if not from_shell:
                raise
            raise CommandError(
                one_line(exc, self.interrupted), returncode=exit_status(exc)
            ) from exc


def add_identity_argument(parser: Any) -> None:
    parser.add_argument(
        "--identity",
        metavar="FILE",
        help="age identity file that opens encrypted backups (default: DBTOOLS['IDENTITY']).",
    )


def add_file_argument(parser: Any, verb: str) -> None:
    parser.add_argument(
        "--file",
        help=f"Backup to {verb}: a name in the backups folder (or DBTOOLS['STORAGE']) or a "
        "local path (default: db-backup-latest.json).",
    )


def add_compress_argument(parser: Any, what: str = "Write the backup") -> None:
    parser.add_argument(
        "--compress",
        nargs="?",
        const=True,
        default=None,
        metavar="{zstd,gzip}",
        help=f"{what} compressed: zstd (.json.zst, the default) or gzip (.json.gz).",
    )


def database_error(exc: DatabaseError) -> str:
    cause = " ".join(str(exc).split()) or type(exc).__name__
    if "database is locked" in cause:
        hint = (
            "Another process is writing to the SQLite file: wait for it to finish, or stop it, "
            "then run this again."
        )
    else:
        hint = "Check that the database is reachable and migrated (`manage.py showmigrations`)."
    return f"The database reported an error: {sentence(cause)} {hint}"


def progress_bar(command: BaseCommand, verbosity: int) -> ProgressBar | None:
    """A progress bar on the command's stderr, if that is a terminal."""
    return ProgressBar.for_stream(underlying_stream(command.stderr), verbosity)


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
