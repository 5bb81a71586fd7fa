"""ArchiveReader: a backup document read line by line in constant memory, every table checked (format.py)."""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from ..conf import get_settings
from ..exceptions import ArchiveError
from ..storage.base import BackupFile, open_file
from .envelope import AGE_ARMOR_MAGIC, READ_ERRORS, is_age, open_plaintext
from .format import (
    FORMAT,
    HEADER_PREFIX,
    HEADER_SUFFIX,
    SUMMARY_PREFIX,
    TABLE_END_PREFIX,
    TABLE_SUFFIX,
    VERSION,
)


def header_problem(meta: Any) -> str | None:
    """What is wrong with a header's meta, for the fields a reader relies on."""
    if not isinstance(meta, dict):
        return "'meta' is not an object"
    if not isinstance(meta.get("created_at"), str):
        return "'created_at' is missing or not text"
    try:
        datetime.datetime.fromisoformat(meta["created_at"])
    except ValueError:
        return f"'created_at' is not a date and time ({meta['created_at'][:40]!r})"
    if not _is_migration_lists(meta.get("migrations", {})):
        return "'migrations' is not a list of migration names per app"
    return _field_type_problem(meta)


def _is_migration_lists(migrations: Any) -> bool:
    return isinstance(migrations, dict) and all(
        isinstance(names, list) and all(isinstance(n, str) for n in names)
        for names in migrations.values()
    )


def _field_type_problem(meta: dict[str, Any]) -> str | None:
    for key in ("vendor", "database", "backup_id"):
        if key in meta and not isinstance(meta[key], str):
            return f"{key!r} is not text"
    for key in ("only", "exclude", "order"):
        if key in meta and not (
            isinstance(meta[key], list) and all(isinstance(v, str) for v in meta[key])
        ):
            return f"{key!r} is not a list of labels"
    return None


def table_problem(meta: Any) -> str | None:
    """What is wrong with a table's description, for the fields a reader relies on."""
    if not isinstance(meta, dict):
        return "it is not an object"
    label = meta.get("label")
    if not isinstance(label, str) or label.count(".") != 1:
        return "'label' is missing or not of the form app_label.Model"
    columns = meta.get("columns")
    if not isinstance(columns, list) or not columns:
        return f"{label}: 'columns' is missing or empty"
    for column in columns:
        if not isinstance(column, dict) or not all(
            isinstance(column.get(key), str) for key in ("name", "kind")
        ):
            return f"{label}: a column has no 'name' or 'kind'"
    if not isinstance(meta.get("pk", []), list):
        return f"{label}: 'pk' is not a list"
    return None


@dataclass
class TableSection:
    """One table of an archive; `rows` must be read through before the next table."""

    meta: dict[str, Any]
    rows: Iterator[Any]  # raw lines, or whatever the chosen parser returns


@dataclass
class ArchiveReader:
    """Streams a backup file, plain, gzip, zstd or age-encrypted (told by content, not name).

    `source`, if given, is the file already open (read from its start; the
    caller closes it): a restore reads the very file it checked and showed,
    even if the name has since been given to another backup.
    """

    path: BackupFile
    source: IO[bytes] | None = None
    max_line_bytes: int = field(default_factory=lambda: get_settings().max_line_bytes)
    header: dict[str, Any] = field(init=False)
    summary: dict[str, Any] | None = field(init=False, default=None)
    encrypted: bool = field(init=False)  # an age file: its plaintext must not reach disk

    def __post_init__(self) -> None:
        self._raw = self.source or open_backup(self.path)
        try:
            self._raw.seek(0)
            self.encrypted = is_age(self._raw.read(len(AGE_ARMOR_MAGIC)))
            self._stream = open_plaintext(self._raw, self.path.name)
        except BaseException as exc:
            if self.source is None:
                self._raw.close()
            if isinstance(exc, OSError):  # a bucket's object replaced, or the network gone
                raise ArchiveError(
                    f"{self.path.name} could not be read: {exc}.",
                    changed=False,
                    fix="run the command again (`manage.py listbackups` shows the backups).",
                ) from exc
            raise
        self._line_no = 0
        try:
            first = self._read_line()
            self._line_no = 1
            self.header = self._parse_header(first)
            self._check_header()
        except ArchiveError:
            self.close()
            raise

    def _parse_header(self, first: bytes) -> dict[str, Any]:
        """The first line's JSON, once its shape says it is a dbtools backup's."""
        if not first:
            if self._stream is not self._raw:
                raise ArchiveError(
                    f"{self.path.name} holds nothing once decompressed or decrypted: it was cut "
                    f"before its first line, or it is not a backup. Use another backup."
                )
            raise ArchiveError(f"{self.path.name} is empty; it is not a backup.")
        if len(first) > self.max_line_bytes:
            raise self._too_long()
        if first.startswith(b'[{"model":'):
            raise ArchiveError(
                f"{self.path.name} looks like a `dumpdata` file; load it with `manage.py loaddata`."
            )
        if not first.startswith(HEADER_PREFIX):
            raise ArchiveError(
                f'{self.path.name} is not a dbtools backup (it does not start with {{"format": ...).'
            )
        if not first.endswith(b"\n"):
            raise self._truncated()
        first = first[:-1]
        if not first.endswith(HEADER_SUFFIX):
            raise ArchiveError(
                f"{self.path.name} has a damaged first line; it is not a backup dbtools can read."
            )
        try:
            header: dict[str, Any] = orjson.loads(first[: -len(HEADER_SUFFIX)] + b"}")
        except orjson.JSONDecodeError as exc:
            raise ArchiveError(
                f"{self.path.name}: the metadata is not valid JSON ({exc})."
            ) from exc
        return header

    def _check_header(self) -> None:
        if self.header.get("format") != FORMAT:
            raise ArchiveError(
                f"{self.path.name} is not a dbtools backup (format {self.header.get('format')!r})."
            )
        version = self.header.get("version")
        if version != VERSION:
            raise ArchiveError(
                f"{self.path.name} is format version {version!r}; this dbtools reads version {VERSION}. "
                f"Use the dbtools version that wrote it."
            )
        problem = header_problem(self.header.get("meta"))
        if problem:
            raise ArchiveError(
                f"{self.path.name} has damaged metadata: {problem}. The file was edited or damaged; "
                f"use another backup."
            )

    @property
    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = self.header["meta"]
        return meta

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._stream is not self._raw:  # the layers leave the file itself open
            self._stream.close()
        if self.source is None:
            self._raw.close()

    def _read_line(self) -> bytes:
        """One line, at most max_line_bytes long: a hostile file's one huge
        line must not take the machine's memory."""
        try:
            line = self._stream.readline(self.max_line_bytes + 1)
        except READ_ERRORS as exc:
            raise self._unreadable(exc) from exc
        if len(line) > self.max_line_bytes:
            raise self._too_long()
        return line

    def _unreadable(self, exc: BaseException) -> ArchiveError:
        return ArchiveError(
            f"{self.path.name} could not be read at line {self._line_no + 1}: "
            f"{exc or type(exc).__name__}. The file is damaged; use another backup."
        )

    def _too_long(self) -> ArchiveError:
        return ArchiveError(
            f"{self.path.name} line {self._line_no + 1} is longer than {self.max_line_bytes:,} bytes, "
            f"the most this dbtools reads in one line (DBTOOLS['MAX_LINE_BYTES']). If the backup really "
            f"holds rows that large, raise the setting; otherwise the file is damaged."
        )

    def _next_line(self) -> bytes | None:
        line = self._read_line()
        if not line:
            return None
        self._line_no += 1
        if not line.endswith(b"\n"):
            raise self._truncated()
        return line[:-1]

    def _truncated(self) -> ArchiveError:
        return ArchiveError(
            f"{self.path.name} is truncated after line {self._line_no}: the backup did not finish "
            f"or the file was cut. Use another backup (see `manage.py listbackups --verify`)."
        )

    def tables(
        self, parser_for: Callable[[dict[str, Any]], Callable[[bytes], Any] | None] | None = None
    ) -> Iterator[TableSection]:
        """Yield each table; its rows are checked against the count and checksum at its end.

        `parser_for(table_meta)` picks how row lines are parsed; without it, or
        where it returns None, rows come as raw lines (verification only reads bytes).
        """
        while True:
            line = self._next_line()
            if line is None:
                raise self._truncated()
            if line.startswith(SUMMARY_PREFIX):
                self.summary = self._load(b"{" + line[2:], "summary")["summary"]
                if self._next_line() is not None:
                    raise ArchiveError(
                        f"{self.path.name} has data after its end (line {self._line_no})."
                    )
                return
            start = line.removeprefix(b",")
            if not (start.startswith(b'{"table":') and start.endswith(TABLE_SUFFIX)):
                raise ArchiveError(
                    f"{self.path.name} line {self._line_no}: expected the start of a table."
                )
            meta = self._load(start[: -len(TABLE_SUFFIX)] + b"}", "table")["table"]
            problem = table_problem(meta)
            if problem:
                raise ArchiveError(
                    f"{self.path.name} line {self._line_no}: damaged table description: {problem}. "
                    f"The file was edited or damaged; use another backup."
                )
            parse = parser_for(meta) if parser_for else None
            rows = self._rows(meta, parse)
            yield TableSection(meta=meta, rows=rows)
            for _ in rows:  # the caller may stop early; still check the table
                pass

    def _rows(self, meta: dict[str, Any], parse: Callable[[bytes], Any] | None) -> Iterator[Any]:
        """The lines of one table, checked; _read_line and _next_line's checks
        inlined (this runs once per row, twice per restore: a third of a
        restore's reading was the calls and the copies of each line)."""
        digest = hashlib.sha256()
        update = digest.update
        readline = self._stream.readline
        limit = self.max_line_bytes + 1
        count = 0
        while True:
            try:
                line = readline(limit)
            except READ_ERRORS as exc:
                raise self._unreadable(exc) from exc
            if len(line) >= limit:
                raise self._too_long()
            if not line.endswith(b"\n"):
                if line:
                    self._line_no += 1
                raise self._truncated()
            self._line_no += 1
            if line.startswith(TABLE_END_PREFIX):
                end = self._load(b"{" + line[2:-1], "table end")
                if end.get("count") != count or end.get("sha256") != digest.hexdigest():
                    what = (
                        f"has {count} rows where the file says {end.get('count')}"
                        if end.get("count") != count
                        else "does not match its checksum"
                    )
                    raise ArchiveError(
                        f"{self.path.name}: table {meta.get('label')} {what}; the file was edited or "
                        f"damaged. Use another backup."
                    )
                return
            update(line)
            count += 1
            row = line[1:-1] if line.startswith(b",") else line[:-1]
            if parse is not None:
                try:
                    yield parse(row)
                except (ValueError, RecursionError) as exc:
                    cause = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
                    raise ArchiveError(
                        f"{self.path.name} line {self._line_no}: row {count} of {meta.get('label')} "
                        f"is not a valid row ({cause}). The file was edited or damaged; nothing was "
                        f"changed. Use another backup."
                    ) from exc
            else:
                yield row

    def _load(self, text: bytes, what: str) -> dict[str, Any]:
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ArchiveError(
                f"{self.path.name} line {self._line_no}: damaged {what} ({exc})."
            ) from exc
        if not isinstance(value, dict):
            raise ArchiveError(f"{self.path.name} line {self._line_no}: damaged {what}.")
        return value


def open_backup(path: BackupFile) -> IO[bytes]:
    """The file itself, opened for reading, or a one-line error."""
    try:
        return open_file(path)
    except FileNotFoundError:
        raise ArchiveError(f"Backup file {path} does not exist.") from None
    except OSError as exc:
        raise ArchiveError(f"Backup file {path} cannot be opened: {exc.strerror or exc}.") from exc


def verify(path: BackupFile) -> dict[str, Any]:
    """Read a whole archive, checking every table; return its summary."""
    with ArchiveReader(path) as reader:
        for _section in reader.tables():
            pass
        assert reader.summary is not None
        return reader.summary
