"""The backup file: its format (format.py), written by writer.py and read by
reader.py, its values encoded by codec.py, wrapped on disk by envelope.py
(gzip or zstd, then age)."""

from __future__ import annotations

from .reader import ArchiveReader, TableSection, open_backup, verify
from .row_parsing import row_parser
from .writer import ArchiveWriter

__all__ = ["ArchiveReader", "ArchiveWriter", "TableSection", "open_backup", "row_parser", "verify"]
