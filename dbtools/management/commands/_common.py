"""What the dbtools commands share: display helpers. No logic lives here."""

from __future__ import annotations

import os
from pathlib import Path

from django.core.management.base import BaseCommand

from dbtools.progress import ProgressBar


def progress_bar(command: BaseCommand, verbosity: int) -> ProgressBar | None:
    """A progress bar on the command's stderr, if that is a terminal."""
    return ProgressBar.for_stream(command.stderr._out, verbosity)  # type: ignore[arg-type]


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the current folder when inside it."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
