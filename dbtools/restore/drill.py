"""A restore drill: a checksum says a file is whole, only a restore says it restores.

drill() restores a backup into a scratch database of the target's vendor
(the replay's machinery: a SQLite file in a private temporary folder, or a
database beside the target, dropped afterwards), migrated to this project's
migrations, then backs the scratch database up again and compares, table by
table, the row counts and the SHA-256 of the rows as dbtools writes them.
Equal checksums prove the rows came back value for value. Where the schema
changed since the backup (other columns), or the rows went through data
migrations (a replay), the rows cannot be equal byte for byte: the drill
then compares counts only and says so.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db.migrations.executor import MigrationExecutor

from ..archive import ArchiveReader
from ..archive.format import outside_subset, partial_kind
from ..backends import connect, vendor_name
from ..backup import backup_database
from ..exceptions import NeedsReplay, RestoreError
from ..storage import BackupFile
from ..storage.catalog import resolve_backup
from .flow import restore_database
from .mapping import NATURAL_KEYS
from .plan import prepare_restore
from .replay import replay_restore
from .scratch import Scratch, private_folder, scratch_database, scratch_only

OUTSIDE = "not compared: outside the subset (no chosen row reaches it), not restored"
MATCHED = "not compared: matched by natural key with the rows migrate made"


@dataclass
class TableCheck:
    label: str
    in_backup: int
    restored: int
    checksum: str  # "match", "differs", or why it could not be compared

    @property
    def ok(self) -> bool:
        return self.in_backup == self.restored and self.checksum != "differs"

    @property
    def vacuous(self) -> bool:
        """Not compared, and there was nothing to compare: a subset's table it
        holds no rows of."""
        return self.checksum.startswith("not compared") and not self.in_backup


@dataclass
class DrillResult:
    path: BackupFile
    vendor: str
    tables: list[TableCheck]
    restore_seconds: float
    replayed: bool
    error: str | None = None  # the restore into the scratch database failed

    @property
    def ok(self) -> bool:
        return self.error is None and all(t.ok for t in self.tables)

    @property
    def failed(self) -> list[TableCheck]:
        return [t for t in self.tables if not t.ok]

    @property
    def unproven(self) -> list[TableCheck]:
        return [t for t in self.tables if t.checksum not in ("match", "differs") and not t.vacuous]


@dataclass
class _Digest:
    rows: int
    sha256: str
    columns: list[tuple[str, str]]


def row_digests(path: BackupFile) -> dict[str, _Digest]:
    """Per table label: row count, SHA-256 over the row lines, and the columns."""
    digests = {}
    with ArchiveReader(path) as reader:
        for section in reader.tables():
            digest, rows = hashlib.sha256(), 0
            for line in section.rows:
                digest.update(line + b"\n")
                rows += 1
            columns = [(c["name"], c["kind"]) for c in section.meta["columns"]]
            digests[section.meta["label"]] = _Digest(rows, digest.hexdigest(), columns)
    return digests


def drill(path: str | BackupFile | None = None, *, using: str = "default") -> DrillResult:
    """Restore `path` (default: latest) into a scratch database and compare it table by table."""
    backup_path = resolve_backup(path)
    target = connect(using)
    expected = row_digests(backup_path)  # reads the file through: a damaged one stops here
    with ArchiveReader(backup_path) as reader:
        include_unmanaged = bool(reader.meta.get("include_unmanaged"))
        apart = not_compared(reader.meta, {label: d.rows for label, d in expected.items()})
    with (
        private_folder("dbtools-drill-") as private,
        scratch_database(target) as scratch,
        scratch_only(scratch),
    ):
        migrate_to_latest(scratch)
        started = time.monotonic()
        replayed = False
        try:
            try:
                plan = prepare_restore(backup_path, using=scratch.alias)
            except NeedsReplay:
                # Data migrations ran since the backup: restoredb would replay, so the drill does.
                replayed = True
                restored = replay_restore(backup_path, using=scratch.alias, mode="replace")
                current = {t.label: t.label for t in restored.tables}
            else:
                current = {m.backup_label: m.table.label for m in plan.mappings if m.table}
                restore_database(plan, mode="replace", announce_result=False)
        except RestoreError as exc:  # what restoredb would have said: the drill's finding
            return DrillResult(
                backup_path, vendor_name(target), [], time.monotonic() - started, replayed, str(exc)
            )
        seconds = time.monotonic() - started
        again = backup_database(
            using=scratch.alias,
            output=Path(private) / "drill.json",
            only=sorted(set(current.values())),
            exclude=(),
            compress=False,
            encrypt_to=(),
            include_unmanaged=include_unmanaged,
            announce_result=False,
        )
        actual = row_digests(again.path)
    tables = [
        TableCheck(label, digest.rows, digest.rows, apart[label])
        if label in apart
        else compare(label, digest, actual.get(current.get(label, "")), replayed)
        for label, digest in expected.items()
    ]
    return DrillResult(backup_path, vendor_name(target), tables, seconds, replayed)


def not_compared(meta: dict[str, Any], counts: dict[str, int]) -> dict[str, str]:
    """The tables of a subset that its restore does not give exactly its rows,
    with why: those outside it (left as the scratch database's migrations
    made them) and the natural-key tables it holds some rows of (matched with
    the ones `migrate` made)."""
    if partial_kind(meta) != "subset":
        return {}
    apart = dict.fromkeys(outside_subset(meta, counts), OUTSIDE)
    for label in counts:
        if label not in apart and label.lower() in NATURAL_KEYS:
            apart[label] = MATCHED
    return apart


def compare(label: str, expected: _Digest, got: _Digest | None, replayed: bool) -> TableCheck:
    if got is None:
        return TableCheck(
            label, expected.rows, 0, "not restored: the table is not in this project, or renamed"
        )
    if replayed:
        checksum = "not comparable: the rows went through data migrations (a replay)"
    elif got.columns != expected.columns:
        checksum = "not comparable: the table's columns changed since the backup"
    else:
        checksum = "match" if got.sha256 == expected.sha256 else "differs"
    return TableCheck(label, expected.rows, got.rows, checksum)


def migrate_to_latest(scratch: Scratch) -> None:
    """The scratch database as `manage.py migrate` makes a new one: every migration."""
    from .replay import migrate

    executor = MigrationExecutor(connect(scratch.alias))
    migrate(scratch, executor.loader.graph.leaf_nodes(), "this project's migrations")
