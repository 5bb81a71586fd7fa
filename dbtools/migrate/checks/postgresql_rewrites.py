"""PostgreSQL's table rewrites and index builds that an ALTER TABLE hides in its
subcommands: a column added with a value computed for each row (a volatile
default, a serial or identity column, a stored generated column), a type change
USING an expression, and the index a UNIQUE, PRIMARY KEY or EXCLUDE constraint
builds, inline in ADD COLUMN or added, unless USING INDEX names one built
already. Since PostgreSQL 11 a constant or stable default (now()) is stored once
in the catalogue and rewrites nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pglast import ast as pg
from pglast.enums import AlterTableType, ConstrType
from pglast.stream import RawStream
from pglast.visitors import Visitor

from .context import OperationContext
from .findings import Raised
from .sql import SERIAL_TYPES, column_name
from .types import rewrites

INDEXED = {
    ConstrType.CONSTR_UNIQUE: "UNIQUE",
    ConstrType.CONSTR_PRIMARY: "PRIMARY KEY",
    ConstrType.CONSTR_EXCLUSION: "EXCLUDE",
}
# All overloads of the function are volatile; a function PostgreSQL does not know
# (the statement then fails anyway) is not judged.
VOLATILE = "SELECT bool_and(provolatile = 'v') FROM pg_proc WHERE proname = %s"


class FunctionNames(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def visit_FuncCall(self, _ancestors: Any, node: Any) -> None:
        self.names.append(str(node.funcname[-1].sval))


def volatile_function(context: OperationContext, expression: Any) -> str | None:
    """The first function the expression calls that is volatile, or None."""
    visitor = FunctionNames()
    visitor(expression)
    for name in visitor.names:
        if context.facts.query(VOLATILE, [name])[0][0]:
            return name
    return None


def added_value_per_row(context: OperationContext, column: Any) -> str | None:
    """Why ADD COLUMN computes a value for each row, which rewrites the table; or None."""
    type_name = str(column.typeName.names[-1].sval)
    if type_name in SERIAL_TYPES:
        return f"its {type_name} type draws a new value from a sequence for every row"
    for constraint in column.constraints or ():
        if constraint.contype == ConstrType.CONSTR_IDENTITY:
            return "an identity column draws a new value from a sequence for every row"
        if constraint.contype == ConstrType.CONSTR_GENERATED and constraint.generated_kind == "s":
            return "a stored generated column is computed and written for every row"
        if constraint.contype == ConstrType.CONSTR_DEFAULT and constraint.raw_expr is not None:
            volatile = volatile_function(context, constraint.raw_expr)
            if volatile:
                return f"its default calls {volatile}(), which is volatile: each row gets its own value"
    return None


def check_rewrites(
    context: OperationContext, statement: Any, table: str, where: str, shown: str
) -> Iterator[Raised]:
    for cmd in statement.cmds:
        if cmd.subtype == AlterTableType.AT_AddColumn:
            why = added_value_per_row(context, cmd.def_)
            if why:
                yield Raised("DBT208", f"Adding {cmd.def_.colname} rewrites {where} and its indexes under an "
                             f"ACCESS EXCLUSIVE lock (reads and writes wait): {why}.", shown)  # fmt: skip
    for column, new_type, using in altered_types(statement):
        if using is not None and not of_the_column(using, column):
            yield Raised("DBT205", f"{column} to {new_type} USING {RawStream()(using)} computes every value "
                         f"again: it rewrites {where} and its indexes under an ACCESS EXCLUSIVE lock (reads "
                         f"and writes wait).", shown)  # fmt: skip
            continue
        old_type = context.facts.column_type(table, column)
        if old_type and rewrites(old_type, new_type):
            yield Raised("DBT205", f"{column} from {old_type} to {new_type} rewrites {where} and its indexes "
                         f"under an ACCESS EXCLUSIVE lock (reads and writes wait).", shown)  # fmt: skip


def altered_types(statement: Any) -> list[tuple[str, str, Any]]:
    """(column, new type, USING expression or None) for each ALTER COLUMN … TYPE,
    the type spelt from the parsed name and its modifiers: numeric(12, 2), varchar(80)."""
    return [
        (str(cmd.name), RawStream()(cmd.def_.typeName), cmd.def_.raw_default)
        for cmd in statement.cmds
        if cmd.subtype == AlterTableType.AT_AlterColumnType
    ]


def of_the_column(expression: Any, column: str) -> bool:
    """USING column, or column::type: the type change alone decides the rewrite."""
    if isinstance(expression, pg.TypeCast):
        expression = expression.arg
    return column_name(expression) == column


def check_index_builds(statement: Any, where: str, shown: str) -> Iterator[Raised]:
    """DBT206 for each UNIQUE, PRIMARY KEY or EXCLUDE constraint that builds its index."""
    for cmd in statement.cmds:
        if cmd.subtype == AlterTableType.AT_AddConstraint:
            constraints = [cmd.def_]
        elif cmd.subtype == AlterTableType.AT_AddColumn:
            constraints = list(cmd.def_.constraints or ())
        else:
            continue
        for constraint in constraints:
            kind = INDEXED.get(constraint.contype)
            if kind and not constraint.indexname:
                yield Raised("DBT206", f"The {kind} constraint builds its index on {where} under an ACCESS "
                             f"EXCLUSIVE lock (reads and writes wait).", shown)  # fmt: skip
