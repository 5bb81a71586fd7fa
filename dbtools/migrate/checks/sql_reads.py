"""What a parsed statement does to the data and the names the running code
uses, read from PostgreSQL's parse tree (pglast) or sqlglot's: the columns an
ALTER TABLE drops, the tables a DELETE without WHERE empties, the types a DROP
… CASCADE removes with the columns of that type, and the renames (including a
table moved to another schema, and MySQL's CHANGE old new)."""

from __future__ import annotations

from typing import Any

import sqlglot
from pglast import ast as pg
from pglast.enums import AlterTableType, DropBehavior, ObjectType

# What DROP … CASCADE removes with every column of that type (a schema's CASCADE
# is a DROP SCHEMA, which DBT304 already names).
CASCADED_TYPES: dict[Any, str] = {
    ObjectType.OBJECT_TYPE: "type",
    ObjectType.OBJECT_DOMAIN: "domain",
    ObjectType.OBJECT_EXTENSION: "extension",
}


# PostgreSQL ------------------------------------------------------------------------


def table_of(statement: Any) -> str:
    return str(statement.relation.relname)


def pg_dropped_columns(statement: Any) -> tuple[tuple[str, str], ...]:
    """(table, column) for each ALTER TABLE … DROP COLUMN."""
    if not isinstance(statement, pg.AlterTableStmt):
        return ()
    return tuple(
        (table_of(statement), str(cmd.name))
        for cmd in statement.cmds or ()
        if cmd.subtype == AlterTableType.AT_DropColumn
    )


def pg_emptied(statement: Any) -> tuple[str, ...]:
    """The table a DELETE without WHERE empties."""
    if isinstance(statement, pg.DeleteStmt) and statement.whereClause is None:
        return (table_of(statement),)
    return ()


def pg_cascaded(statement: Any) -> tuple[tuple[str, str], ...]:
    """(kind, name) of each type, domain or extension a DROP … CASCADE removes."""
    if not isinstance(statement, pg.DropStmt) or statement.behavior != DropBehavior.DROP_CASCADE:
        return ()
    kind = CASCADED_TYPES.get(statement.removeType)
    if kind is None:
        return ()
    names = []
    for name in statement.objects or ():
        parts = (name.names or ()) if isinstance(name, pg.TypeName) else (name,)
        names.append((kind, ".".join(str(part.sval) for part in parts)))
    return tuple(names)


def pg_moves_schema(statement: Any) -> bool:
    """ALTER TABLE … SET SCHEMA: the code's unqualified name no longer finds it."""
    return (
        isinstance(statement, pg.AlterObjectSchemaStmt)
        and statement.objectType == ObjectType.OBJECT_TABLE
    )


# SQLite and MySQL (sqlglot) ------------------------------------------------------------


def sqlglot_dropped_columns(expression: Any) -> tuple[tuple[str, str], ...]:
    """(table, column) for each ALTER TABLE … DROP [COLUMN] c. SQLite's DROP without
    COLUMN is an action sqlglot keeps as a plain Command."""
    exp = sqlglot.exp
    if not isinstance(expression, exp.Alter) or not isinstance(expression.this, exp.Table):
        return ()
    table = expression.this.name
    found = []
    for action in expression.args.get("actions") or []:
        if isinstance(action, exp.Drop) and str(action.args.get("kind") or "").upper() == "COLUMN":
            found += [(table, column.name) for column in action.args.get("tables") or []]
        elif isinstance(action, exp.Command) and str(action.this).upper() == "DROP":
            words = str(getattr(action.expression, "name", action.expression) or "").split()
            if len(words) == 1:
                found.append((table, words[0].strip('"`[]')))
    return tuple(found)


def sqlglot_emptied(expression: Any) -> tuple[str, ...]:
    exp = sqlglot.exp
    if isinstance(expression, exp.Delete) and expression.args.get("where") is None:
        return (expression.this.name,) if isinstance(expression.this, exp.Table) else ("",)
    return ()


def sqlglot_renames(expression: Any) -> bool:
    """RENAME COLUMN, RENAME TO, and MySQL's CHANGE old new (a rename with a type)."""
    exp = sqlglot.exp
    return isinstance(expression, exp.Alter) and any(
        isinstance(action, (exp.RenameColumn, exp.AlterRename))
        or (
            isinstance(action, exp.ModifyColumn)
            and action.args.get("rename_from") is not None
            and action.args["rename_from"].name != action.this.name
        )
        for action in expression.args.get("actions") or []
    )


def sqlglot_created(expression: Any) -> tuple[str, ...]:
    """The table a CREATE [TEMP] TABLE (not IF NOT EXISTS) makes new."""
    exp = sqlglot.exp
    if (
        isinstance(expression, exp.Create)
        and str(expression.args.get("kind") or "").upper() == "TABLE"
        and not expression.args.get("exists")
    ):
        table = expression.find(exp.Table)
        return (table.name,) if table is not None and not table.db else ()
    return ()
