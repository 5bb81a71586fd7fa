"""What one statement of a RunSQL does to the rows: a DELETE without WHERE
empties its table (DBT306), a DROP TYPE, DOMAIN or EXTENSION … CASCADE drops
every column of that type with its data (DBT307)."""

from __future__ import annotations

from collections.abc import Iterator

from .context import OperationContext
from .findings import Raised
from .sql import Statement

# The columns of existing tables whose type is the named type or domain, or one
# of the types an extension owns, or a domain or array over one of them.
COLUMNS_OF_TYPES = """
WITH RECURSIVE dropped(oid) AS (
    SELECT oid FROM pg_type WHERE %(kind)s <> 'extension' AND oid = to_regtype(%(name)s)
    UNION
    SELECT d.objid FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid
    WHERE %(kind)s = 'extension' AND e.extname = %(name)s
      AND d.refclassid = 'pg_extension'::regclass AND d.classid = 'pg_type'::regclass
      AND d.deptype = 'e'
    UNION
    SELECT t.oid FROM pg_type t JOIN dropped ON t.typbasetype = dropped.oid OR t.typelem = dropped.oid
)
SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE a.atttypid IN (SELECT oid FROM dropped) AND a.attnum > 0 AND NOT a.attisdropped
  AND c.relkind IN ('r', 'p')
ORDER BY 1, 2 LIMIT 6
"""


def check_statement_rows(
    context: OperationContext, statement: Statement, created: set[str]
) -> Iterator[Raised]:
    for table in statement.emptied:
        # A table the same SQL or the plan makes holds nothing kept: a scratch table.
        if table not in created and not context.new_table(table):
            yield Raised("DBT306", f"The SQL deletes every row of {table} (DELETE without WHERE); "
                         f"they are afterwards only in the backup.", statement.text)  # fmt: skip
    for kind, name in statement.cascaded:
        columns = context.facts.query(COLUMNS_OF_TYPES, {"kind": kind, "name": name})
        if columns:
            shown = ", ".join(f"{table}.{column}" for table, column in columns[:5])
            more = ", …" if len(columns) > 5 else ""
            yield Raised("DBT307", f"DROP {kind.upper()} {name} CASCADE drops the columns of that type with "
                         f"their data: {shown}{more}.", statement.text)  # fmt: skip
