"""How the core and the commands show things to a person."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .storage.base import BackupRef, BackupStore


def shown(place: BackupRef | BackupStore) -> str:
    """A backup, or the folder or bucket it is in, as the user would type it: a path
    relative to the current folder when inside it, anything else as its URL."""
    return place.describe()


def sentence(text: str) -> str:
    """`text` ended as a sentence: a driver's message may already end with '?' or '.'."""
    return text if text.endswith((".", "?", "!")) else f"{text}."


def counted(n: int, noun: str, plural: str = "") -> str:
    """`n` and its noun, singular for exactly one: "1 row", "0 rows", "20,006 rows"."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
