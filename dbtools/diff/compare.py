"""The streaming comparison of one table: both sides' row lines, in the same
primary-key order, merge-joined in constant memory. The database's lines are
encoded by the code that wrote the backup's, so an unchanged row's two lines
are byte for byte equal: such lines are counted same without being parsed.

Where the key order of the two sides cannot be trusted to agree with
Python's (text keys sort by the database's collation, and MariaDB sorts
UUIDs its own way: flow.in_python_order), both sides are first spilled into
a temporary SQLite file and read back in the order of the key's JSON text:
memory stays bounded, disk holds the rows for as long as the table takes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson

from ..archive.codec import JSON_NULL_KEY
from ..restore.scratch import DIFF_FOLDER_PREFIX, private_folder
from .report import HIDDEN, DiffError, RowExample, TableDiff, cut
from .values import same_number

Row = dict[str, Any]
Line = bytes | str
SPILL_BATCH = 5_000


class _JsonNull:
    """A JSONField's JSON null, which is not SQL NULL."""

    def __repr__(self) -> str:
        return "JSON null"


JSON_NULL = _JsonNull()


@dataclass
class Pairing:
    """Which column of the old side is compared with which of the new.

    Names are (new, old): a renamed column is reported under its new name."""

    key: list[tuple[str, str]]
    columns: list[tuple[str, str]]
    hidden: frozenset[str] = frozenset()  # new names whose values are never shown
    ordered: bool = True  # both sides come in an order Python's comparison agrees with
    # New names whose values Python's == can take for equal when the text
    # differs (exactly_compared): compared as the codec wrote them.
    exact: frozenset[str] = frozenset()
    # New names of float and decimal columns (numeric_columns): compared as
    # numbers, since two right spellings of one number differ in text.
    numbers: dict[str, str] = field(default_factory=dict)

    @property
    def hidden_key(self) -> list[bool]:
        """Per part of the key, whether its values are never shown."""
        return [new in self.hidden for new, _old in self.key]

    @property
    def same_names(self) -> bool:
        return all(new == old for new, old in self.columns)


LINE = "$line"


def tagged(line: Line) -> Row:
    """A row line parsed with each number kept as its text and its type, so
    that true, 1 and 1.0 (and -0.0 and 0.0) are all different (a tuple is
    never equal to a parsed array, a list)."""
    row: Row = json.loads(
        line, parse_int=lambda text: (int, text), parse_float=lambda text: (float, text)
    )
    return row


def value_of(row: Row, name: str) -> Any:
    nulls = row.get(JSON_NULL_KEY)
    if nulls and name in nulls:
        return JSON_NULL
    return row.get(name)


def key_reader(names: list[str]) -> Callable[[Row], Any]:
    """row -> its key: the value itself for a one-column key, else a tuple."""
    return itemgetter(*names)


def merge_join(
    old: Iterator[Row],
    new: Iterator[Row],
    old_key: Callable[[Row], Any],
    new_key: Callable[[Row], Any],
    hide_keys: bool = False,
) -> Iterator[tuple[Row | None, Row | None]]:
    """(old row, new row) pairs in key order; None where a side has no such key.
    `hide_keys`: an error does not quote them (a sensitive field is part of them)."""
    o, n = next(old, None), next(new, None)
    ok: Any
    nk: Any
    ok = old_key(o) if o is not None else None
    nk = new_key(n) if n is not None else None
    while o is not None or n is not None:
        if n is None or (o is not None and ok < nk):
            yield o, None
            o, previous = next(old, None), ok
            ok = old_key(o) if o is not None else None
            in_order(previous, ok, hide_keys)
        elif o is None or nk < ok:
            yield None, n
            n, previous = next(new, None), nk
            nk = new_key(n) if n is not None else None
            in_order(previous, nk, hide_keys)
        else:
            yield o, n
            o, n, old_previous, new_previous = next(old, None), next(new, None), ok, nk
            ok = old_key(o) if o is not None else None
            nk = new_key(n) if n is not None else None
            in_order(old_previous, ok, hide_keys)
            in_order(new_previous, nk, hide_keys)


def in_order(previous: Any, current: Any, hide_keys: bool = False) -> None:
    if current is not None and not previous < current:
        keys = (
            "the keys are not shown: DBTOOLS['SENSITIVE_FIELDS'] lists a part of them"
            if hide_keys
            else f"key {current!r} after {previous!r}"
        )
        raise DiffError(
            f"Rows are not in primary-key order ({keys}), "
            f"or a key appears twice: the backup was edited, or the table has no usable primary "
            f"key. Leave the table out with --exclude."
        )


FIRST = object()  # Side.before_key before any row was taken


class Side:
    """One side's row lines, read one at a time: the head is parsed only when
    the two heads differ, and checked then against the row before it."""

    def __init__(self, lines: Iterable[Line], key: Callable[[Row], Any], keep: bool, hide: bool):
        self.lines = iter(lines)
        self.key, self.keep, self.hide = key, keep, hide
        self.line: Line | None = next(self.lines, None)
        self.row: Row | None = None  # the head, once parsed
        self.head_key: Any = None
        self.before: Line | None = None  # the line taken last, while its key is not known
        self.before_key: Any = FIRST

    def parse(self) -> Row:
        if self.row is None:
            assert self.line is not None
            row = orjson.loads(self.line)
            if self.keep:
                row[LINE] = self.line
            self.row, self.head_key = row, self.key(row)
            if self.before is not None:
                self.before_key, self.before = self.key(orjson.loads(self.before)), None
            if self.before_key is not FIRST:
                in_order(self.before_key, self.head_key, self.hide)
        return self.row

    def take(self) -> Row:
        """The head, and the next line parsed (as merge_join checks each row on
        reaching it, which a run of equal lines then no longer has to)."""
        row = self.parse()
        self.before_key = self.head_key
        self.line, self.row = next(self.lines, None), None
        if self.line is not None:
            self.parse()
        return row

    def skipped(self, line: Line | None, last: Line) -> None:
        """A run of lines equal to the other side's was taken, `last` the last of them."""
        self.line, self.row, self.before = line, None, last


def equal_run(old: Side, new: Side) -> int:
    """Take the lines the two sides have in common from their heads on; how many.

    Two equal lines (bytes, or two str) are one row under one key, equal in
    every paired column (line_join's pairing pairs each column with the one
    of its own name), so they are counted same unparsed. Their order is not
    checked: the first line after the run that differs is parsed and checked
    against the run's last. Within the run both sides hold the same keys in
    the same order, so a key out of order or repeated goes unseen only where
    the other side has it just so, which the database's side, read in the
    order of a primary key, never does."""
    o, n = old.line, new.line
    if o is None or o != n:
        return 0
    old_lines, new_lines = old.lines, new.lines
    count = 0
    last = o
    while o == n and o is not None:
        count += 1
        last = o
        o, n = next(old_lines, None), next(new_lines, None)
    old.skipped(o, last)
    new.skipped(n, last)
    return count


def line_join(old: Side, new: Side, same: list[int]) -> Iterator[tuple[Row | None, Row | None]]:
    """merge_join's pairs, for a pairing of each column with the one of its own
    name: only the rows whose lines differ are parsed and paired; the rows
    whose lines are equal (equal_run) are only counted, in same[0]."""
    while True:
        same[0] += equal_run(old, new)
        if old.line is None and new.line is None:
            return
        o = None if old.line is None else old.parse()
        n = None if new.line is None else new.parse()
        if n is None or (o is not None and old.head_key < new.head_key):
            yield old.take(), None
        elif o is None or new.head_key < old.head_key:
            yield None, new.take()
        else:
            yield old.take(), new.take()


def parsed(lines: Iterable[Line], keep_line: bool = False) -> Iterator[Row]:
    loads = orjson.loads
    for line in lines:
        row = loads(line)
        if keep_line:
            row[LINE] = line
        yield row


def spill_folder() -> AbstractContextManager[Path]:
    """Spilled rows may be an encrypted backup's plaintext: a folder only this
    user reads, which the next run removes if this one is killed."""
    return private_folder(DIFF_FOLDER_PREFIX)


def key_text(names: list[str]) -> Callable[[Row], str]:
    """row -> its key as JSON text (a list), the order a spill sorts by."""
    key = key_reader(names)
    single = len(names) == 1

    def text(row: Row) -> str:
        value = key(row)
        return orjson.dumps([value] if single else list(value)).decode()

    return text


def spilled_lines(
    lines: Iterable[Line], names: list[str], path: Path
) -> Iterator[tuple[str, bytes]]:
    """(key text, line) again, ordered by their key's JSON text, via a SQLite file."""
    key = key_text(names)
    db = sqlite3.connect(path)
    try:
        db.execute("CREATE TABLE r (k TEXT PRIMARY KEY, line BLOB) WITHOUT ROWID")
        batch: list[tuple[str, bytes]] = []
        try:
            for row_line in lines:
                raw = row_line.encode() if isinstance(row_line, str) else row_line
                batch.append((key(orjson.loads(raw)), raw))
                if len(batch) >= SPILL_BATCH:
                    db.executemany("INSERT INTO r VALUES (?, ?)", batch)
                    batch = []
            db.executemany("INSERT INTO r VALUES (?, ?)", batch)
        except sqlite3.IntegrityError as exc:
            raise DiffError(
                f"A primary key appears twice ({exc}): the backup was edited or damaged. "
                f"Use another backup, or leave the table out with --exclude."
            ) from exc
        yield from db.execute("SELECT k, line FROM r ORDER BY k")
    finally:
        db.close()


def spilled(lines: Iterable[Line], names: list[str], path: Path) -> Iterator[Row]:
    """The rows again, ordered by their key's JSON text (in "$diff_key")."""
    for text, raw in spilled_lines(lines, names, path):
        row = orjson.loads(raw)
        row["$diff_key"] = text
        row[LINE] = raw
        yield row


def compare_table(
    diff: TableDiff,
    old_lines: Iterable[Line],
    new_lines: Iterable[Line],
    pairing: Pairing,
    examples: int,
) -> None:
    """Count what differs between the two sides of one table into `diff`."""
    old_names = [old for _new, old in pairing.key]
    new_names = [new for new, _old in pairing.key]
    if pairing.ordered and pairing.same_names:
        keys = key_reader(old_names), key_reader(new_names)
        count_lines(diff, (old_lines, new_lines), keys, pairing, examples)
        return
    if pairing.ordered:
        keep = bool(pairing.exact)
        pairs = merge_join(
            parsed(old_lines, keep),
            parsed(new_lines, keep),
            key_reader(old_names),
            key_reader(new_names),
            any(pairing.hidden_key),
        )
        count_pairs(diff, pairs, pairing, examples, old_names)
        return
    with spill_folder() as folder:
        if pairing.same_names:
            old_sorted = (
                raw for _key, raw in spilled_lines(old_lines, old_names, folder / "old.sqlite3")
            )
            new_sorted = (
                raw for _key, raw in spilled_lines(new_lines, new_names, folder / "new.sqlite3")
            )
            keys = key_text(old_names), key_text(new_names)
            count_lines(diff, (old_sorted, new_sorted), keys, pairing, examples)
            return
        by_text = key_reader(["$diff_key"])
        pairs = merge_join(
            spilled(old_lines, old_names, folder / "old.sqlite3"),
            spilled(new_lines, new_names, folder / "new.sqlite3"),
            by_text,
            by_text,
        )
        count_pairs(diff, pairs, pairing, examples, old_names)


def count_lines(
    diff: TableDiff,
    lines: tuple[Iterable[Line], Iterable[Line]],
    keys: tuple[Callable[[Row], Any], Callable[[Row], Any]],
    pairing: Pairing,
    examples: int,
) -> None:
    """count_pairs() over line_join(): the old and the new side's lines, in
    the order of `keys`, the old and the new side's key."""
    keep, hide = bool(pairing.exact), any(pairing.hidden_key)
    same = [0]
    old = Side(lines[0], keys[0], keep, hide)
    new = Side(lines[1], keys[1], keep, hide)
    old_names = [old_name for _new, old_name in pairing.key]
    count_pairs(diff, line_join(old, new, same), pairing, examples, old_names)
    diff.same += same[0]


def count_pairs(
    diff: TableDiff,
    pairs: Iterator[tuple[Row | None, Row | None]],
    pairing: Pairing,
    examples: int,
    old_names: list[str],
) -> None:
    whole_rows = pairing.same_names
    counts = dict.fromkeys((new for new, _old in pairing.columns), 0)
    new_names = [new for new, _old in pairing.key]
    for old, new in pairs:
        if new is None or old is None:
            one_side(diff, old, new, (old_names, new_names, pairing.hidden_key), examples)
            continue
        changed = (
            [] if whole_rows and alike(old, new, pairing) else changed_columns(old, new, pairing)
        )
        if pairing.exact and old[LINE] != new[LINE]:
            changed = exactly_changed(old, new, pairing, changed)
        if not changed:
            diff.same += 1
            continue
        diff.changed += 1
        for new_name, _old_name in changed:
            counts[new_name] += 1
        if len(diff.examples) < examples:
            shown = example_changes(old, new, changed, pairing)
            key = key_of(new, new_names, pairing.hidden_key)
            diff.examples.append(RowExample("changed", key, shown))
    diff.columns = {name: n for name, n in counts.items() if n}


def one_side(
    diff: TableDiff,
    old: Row | None,
    new: Row | None,
    keys: tuple[list[str], list[str], list[bool]],
    examples: int,
) -> None:
    """A row only in the backup (deleted since) or only on the new side (added),
    or only on the side that is not a subset (diff.partial: not compared);
    `keys`: the key's old names, new names and which parts are hidden."""
    old_names, new_names, hidden = keys
    if diff.partial in ("both", "new" if new is None else "old"):
        diff.outside_subset += 1
        return
    if new is None:
        assert old is not None
        diff.only_in_backup += 1
        example = RowExample("only_in_backup", key_of(old, old_names, hidden))
    else:
        diff.only_in_database += 1
        example = RowExample("only_in_database", key_of(new, new_names, hidden))
    if len(diff.examples) < examples:
        diff.examples.append(example)


def alike(old: Row, new: Row, pairing: Pairing) -> bool:
    """Whether two rows whose columns have the same names are equal at once;
    == takes -0.0 for 0.0, so rows with a float column are compared column
    by column instead."""
    return not pairing.numbers and old == new


def changed_columns(old: Row, new: Row, pairing: Pairing) -> list[tuple[str, str]]:
    numbers = pairing.numbers
    changed = []
    for new_name, old_name in pairing.columns:
        before, after = value_of(old, old_name), value_of(new, new_name)
        kind = numbers.get(new_name)
        if (before != after) if kind is None else not same_number(before, after, kind):
            changed.append((new_name, old_name))
    return changed


def exactly_changed(
    old: Row, new: Row, pairing: Pairing, changed: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """`changed`, and the columns of pairing.exact whose text differs though
    their parsed values are equal: the lines are parsed again (tagged), which
    only rows whose lines differ pay for."""
    old_exact, new_exact = tagged(old[LINE]), tagged(new[LINE])
    return [
        (new_name, old_name)
        for new_name, old_name in pairing.columns
        if (new_name, old_name) in changed
        or (
            new_name in pairing.exact
            and value_of(old_exact, old_name) != value_of(new_exact, new_name)
        )
    ]


def key_of(row: Row, names: list[str], hidden: Iterable[bool]) -> list[Any]:
    """The row's key as shown: a part DBTOOLS['SENSITIVE_FIELDS'] lists as HIDDEN."""
    return [HIDDEN if hide else row.get(name) for name, hide in zip(names, hidden, strict=True)]


def example_changes(
    old: Row, new: Row, changed: list[tuple[str, str]], pairing: Pairing
) -> dict[str, tuple[Any, Any]]:
    shown = {}
    for new_name, old_name in changed:
        if new_name in pairing.hidden:
            shown[new_name] = (HIDDEN, HIDDEN)
            continue
        before, after = value_of(old, old_name), value_of(new, new_name)
        shown[new_name] = (
            repr(before) if before is JSON_NULL else cut(before),
            repr(after) if after is JSON_NULL else cut(after),
        )
    return shown
