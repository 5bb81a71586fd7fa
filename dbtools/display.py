"""How the core and the commands show things to a person."""

from __future__ import annotations

import os
from pathlib import Path


def shown(path: object) -> str:
    """A path as the user would type it: relative to the current folder when inside it.
    Anything else (a backup in a bucket, a bucket) as its URL."""
    if not isinstance(path, Path):
        return str(path)
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)


def sentence(text: str) -> str:
    """`text` ended as a sentence: a driver's message may already end with '?' or '.'."""
    return text if text.endswith((".", "?", "!")) else f"{text}."
