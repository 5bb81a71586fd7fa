"""ArchiveWriter: a backup document written table by table, published only when complete (format.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from ..conf import get_settings
from ..exceptions import BackupError
from ..storage.local import LocalSink
from .envelope import SealedWriter
from .format import FORMAT, HEADER_SUFFIX, TABLE_SUFFIX, VERSION


class ArchiveWriter:
    """Writes a backup into a sink that publishes it only when `commit()` is called:
    a temporary file renamed into place (`final`), or an upload (`sink`) such as
    storage.s3.MultipartUpload."""

    def __init__(
        self,
        final: Path | None,
        compression: str | None = None,
        max_line_bytes: int | None = None,
        encrypt_to: Sequence[Any] = (),
        sink: Any = None,
    ) -> None:
        """`compression` is None, "gzip" or "zstd"; `encrypt_to` holds age recipients."""
        self.max_line_bytes = max_line_bytes or get_settings().max_line_bytes
        self._label = ""
        if sink is None:
            assert final is not None
            sink = LocalSink(final)
        self.sink = sink
        try:
            self.out = SealedWriter(self.sink, compression, encrypt_to)
        except BaseException:
            self.sink.abort()
            raise
        self.tables = 0
        self.rows = 0
        self._hash: Any = None
        self._count = 0

    def write_header(self, meta: dict[str, Any]) -> None:
        head = orjson.dumps({"format": FORMAT, "version": VERSION, "meta": meta})
        self.out.write(head[:-1] + HEADER_SUFFIX + b"\n")

    def begin_table(self, table: dict[str, Any]) -> None:
        lead = b"," if self.tables else b""
        self.out.write(lead + orjson.dumps({"table": table})[:-1] + TABLE_SUFFIX + b"\n")
        self._label = str(table.get("label"))
        self._hash = hashlib.sha256()
        self._count = 0

    def write_rows(self, rows: list[bytes] | list[str]) -> None:
        """Rows already encoded as JSON objects, one per item (bytes, or str to be
        encoded as UTF-8 in one go)."""
        if not rows:
            return
        size = longest_line(rows)
        if size > self.max_line_bytes:
            raise too_long_error(self._label, size, self.max_line_bytes)
        lead = "," if self._count else ""
        if isinstance(rows[0], str):
            block = (lead + "\n,".join(rows) + "\n").encode()
        else:
            block = lead.encode() + b"\n,".join(rows) + b"\n"
        self._hash.update(block)
        self.out.write(block)
        self._count += len(rows)

    def copy_rows(self, spool: Path, rows: int) -> None:
        """A table's row lines already written, in file form, by another reader."""
        with open(spool, "rb") as source:
            while block := source.read(1024 * 1024):
                self._hash.update(block)
                self.out.write(block)
        self._count += rows

    def end_table(self) -> tuple[int, str]:
        digest = self._hash.hexdigest()
        tail = orjson.dumps({"count": self._count, "sha256": digest})
        self.out.write(b"]," + tail[1:] + b"\n")
        self.tables += 1
        self.rows += self._count
        return self._count, digest

    def commit(self) -> Any:
        """Finish the document and publish it; returns what the sink made (a Path, or
        a storage.StoredBackup)."""
        summary = orjson.dumps({"summary": {"tables": self.tables, "rows": self.rows}})
        self.out.write(b"]," + summary[1:] + b"\n")
        self.out.close()
        return self.sink.commit()

    def abort(self) -> None:
        self.out.abort()
        self.sink.abort()


def longest_line(lines: list[bytes] | list[str]) -> int:
    """The longest line's size in bytes, at most (a str's UTF-8 is up to 4 bytes a character)."""
    if not lines:
        return 0
    longest = max(lines, key=len)
    return len(longest.encode() if isinstance(longest, str) else longest)


def too_long_error(label: str, size: int, limit: int) -> BackupError:
    return BackupError(
        f"Table {label}: a row is {size:,} bytes as JSON, more than the {limit:,} that a restore reads "
        f"in one line (DBTOOLS['MAX_LINE_BYTES']). Nothing was kept. Raise the setting (it applies to "
        f"restoredb too), or leave the table out with --exclude {label}."
    )
