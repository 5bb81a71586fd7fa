"""Counts in messages take the singular for exactly one: "1 row", "2 rows"."""

from __future__ import annotations

from types import SimpleNamespace

from dbtools.display import counted
from dbtools.management.commands.restoredb import done_line
from dbtools.restore.strategies import TableReceipt


def result(mode: str, *tables: TableReceipt) -> SimpleNamespace:
    return SimpleNamespace(
        mode=mode,
        tables=list(tables),
        path=SimpleNamespace(describe=lambda: "b.json"),
        seconds=0.0,
        inserted=sum(t.inserted for t in tables),
        updated=sum(t.updated for t in tables),
        skipped=sum(t.skipped for t in tables),
        unchanged=sum(t.unchanged for t in tables),
    )


def test_counted():
    assert [counted(n, "row") for n in (0, 1, 2, 1000)] == [
        "0 rows",
        "1 row",
        "2 rows",
        "1,000 rows",
    ]
    assert counted(1, "entry", "entries") == "1 entry"
    assert counted(3, "entry", "entries") == "3 entries"


def test_a_restore_of_one_row_into_one_table_says_so_in_the_singular():
    one = TableReceipt("shop.Category", 1, inserted=1)
    assert done_line(result("merge", one)) == (  # type: ignore[arg-type]
        "Restored 1 row into 1 table, 0 already present and left as they were from b.json in 0.0s."
    )
    assert done_line(result("replace", one)) == (  # type: ignore[arg-type]
        "Restored 1 row into 1 table from b.json in 0.0s. "
        "The row count of this table matches the backup."
    )
    updated = TableReceipt("shop.Category", 4, inserted=1, updated=1, unchanged=1, skipped=1)
    assert done_line(result("overwrite", updated)) == (  # type: ignore[arg-type]
        "Restored 1 row and gave 1 row already present the backup's values, in 1 table, "
        "from b.json in 0.0s. Left as they were, holding the backup's values already: 1 row. "
        "1 row matched by natural key was left as it was."
    )
