"""How the core and the commands show things to a person."""

from __future__ import annotations

import os
from pathlib import Path


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the current folder when inside it."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
