"""The backup file: one JSON document, one row per line, written atomically.

    {"format":"dbtools-backup","version":1,"meta":{...},"tables":[
    {"table":{...},"rows":[
    {"id":1,"email":"a@example.com"}
    ,{"id":2,"email":"b@example.com"}
    ],"count":2,"sha256":"..."}
    ,{"table":{...},"rows":[
    ],"count":0,"sha256":"..."}
    ],"summary":{"tables":2,"rows":2}}

`json.load` and `jq` read the whole document; `ArchiveReader` reads it line
by line in constant memory. Each table ends with its row count and the
SHA-256 of its row lines exactly as they are in the file, each followed by
"\\n", so a truncated or edited file is caught before a restore writes anything.
No ORM in here: the package only knows bytes and dicts. This module names the
format; writer.py writes it, reader.py reads and checks it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FORMAT = "dbtools-backup"
VERSION = 1

HEADER_PREFIX = b'{"format":'
HEADER_SUFFIX = b',"tables":['
TABLE_SUFFIX = b',"rows":['
TABLE_END_PREFIX = b'],"count":'
SUMMARY_PREFIX = b'],"summary":'


def partial_kind(meta: Mapping[str, Any]) -> str | None:
    """ "subset" or "masked" for a backup whose header says it is no whole copy
    of its database's rows, else None."""
    if meta.get("subset"):
        return "subset"
    if meta.get("masked"):
        return "masked"
    return None


def outside_subset(meta: Mapping[str, Any], counts: Mapping[str, int] | None = None) -> set[str]:
    """The labels of the tables a subset backup holds no rows of because no
    chosen row reaches them (its `subset` definition's `unreached`): they are
    outside what the backup covers, so nothing restores them, empties them or
    compares them. Empty for any other backup. A subset file written before the
    list was recorded names none: given the tables' `counts`, its tables with
    no rows are taken as outside it."""
    definition = meta.get("subset")
    if not definition or not isinstance(definition, Mapping):
        return set()
    recorded = definition.get("unreached")
    if isinstance(recorded, list):
        return {label for label in recorded if isinstance(label, str)}
    return {label for label, count in (counts or {}).items() if not count}


def holds_some_rows(meta: Mapping[str, Any], label: str) -> bool:
    """Whether a backup holds only some of table `label`'s rows by choice: a
    subset's tables, but one a --subset took whole (no lookups, no --limit)."""
    definition = meta.get("subset")
    if not definition or not isinstance(definition, Mapping):
        return False
    lowered = label.lower()
    limits = definition.get("limit")
    if isinstance(limits, Mapping) and any(str(name).lower() == lowered for name in limits):
        return True
    taken_whole = set()
    for text in definition.get("subset") or ():
        model, _, lookups = str(text).partition(":")
        if not lookups.strip():
            taken_whole.add(model.strip().lower())
    return lowered not in taken_whole


def unsafe_for_rollback(meta: Mapping[str, Any]) -> str | None:
    """Why a backup, by its header, must never put a database back as it was
    (safemigrate's rollback), or None when it may."""
    kind = partial_kind(meta)
    if kind == "subset":
        return "it is a subset backup (backupdb --subset/--limit), which holds only some rows"
    if kind == "masked":
        return "it is a masked backup (backupdb --mask), whose personal fields hold fake values"
    return None
