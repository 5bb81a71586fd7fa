"""What an atomic migration's earlier statements leave for the later ones on
PostgreSQL: the locks it holds to its commit (ALTER TABLE, RENAME and LOCK TABLE
take ACCESS EXCLUSIVE; SET of autovacuum and similar storage parameters only
SHARE UPDATE EXCLUSIVE), the constraints it added NOT VALID, and the validated
CHECK (column IS NOT NULL) that lets SET NOT NULL skip its scan (PostgreSQL 12+)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pglast
from pglast import ast as pg
from pglast.enums import AlterTableType, BoolExprType, ConstrType, NullTestType, ObjectType

from .context import OperationContext
from .findings import Raised
from .sql import column_name, relation_name

ACCESS_EXCLUSIVE_MODE = 8  # LOCK TABLE's default mode
# ALTER TABLE subcommands that take SHARE UPDATE EXCLUSIVE (ALTER TABLE's documentation).
SHARE_UPDATE_EXCLUSIVE = {
    AlterTableType.AT_ValidateConstraint,
    AlterTableType.AT_SetStatistics,
    AlterTableType.AT_SetOptions,
    AlterTableType.AT_ResetOptions,
    AlterTableType.AT_ClusterOn,
    AlterTableType.AT_DropCluster,
}
RELATION_OPTIONS = {AlterTableType.AT_SetRelOptions, AlterTableType.AT_ResetRelOptions}
# The storage parameters whose SET takes SHARE UPDATE EXCLUSIVE; any other takes ACCESS EXCLUSIVE.
LIGHT_PARAMETERS = {
    "fillfactor",
    "parallel_workers",
    "toast_tuple_target",
    "vacuum_index_cleanup",
    "vacuum_truncate",
    "log_autovacuum_min_duration",
}
CONSTRAINTS_OF = """
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = to_regclass(%s) AND contype = 'c' AND convalidated
"""


def takes_weaker_lock(statement: Any) -> bool:
    """An ALTER TABLE that takes less than ACCESS EXCLUSIVE: foreign keys added,
    constraints validated, statistics, column options, light storage parameters."""
    return all(weaker_subcommand(cmd) for cmd in statement.cmds)


def weaker_subcommand(cmd: Any) -> bool:
    if cmd.subtype in SHARE_UPDATE_EXCLUSIVE:
        return True
    if cmd.subtype == AlterTableType.AT_AddConstraint:
        return bool(cmd.def_.contype == ConstrType.CONSTR_FOREIGN)
    if cmd.subtype in RELATION_OPTIONS:
        return all(
            option.defnamespace == "toast"
            or option.defname.startswith("autovacuum_")
            or option.defname in LIGHT_PARAMETERS
            for option in cmd.def_ or ()
        )
    return False


def exclusively_locked(statement: Any) -> list[str]:
    """The tables a RENAME (of a table or column) or a LOCK TABLE in ACCESS
    EXCLUSIVE mode holds under ACCESS EXCLUSIVE to the commit."""
    if (
        isinstance(statement, pg.RenameStmt)
        and statement.relation is not None
        and statement.renameType in (ObjectType.OBJECT_TABLE, ObjectType.OBJECT_COLUMN)
    ):
        return [relation_name(statement)]
    if isinstance(statement, pg.LockStmt) and statement.mode == ACCESS_EXCLUSIVE_MODE:
        return [str(relation.relname) for relation in statement.relations or ()]
    return []


def remember_not_valid(context: OperationContext, statement: Any, shown: str) -> None:
    for cmd in statement.cmds:
        if cmd.subtype == AlterTableType.AT_AddConstraint and cmd.def_.skip_validation:
            kind = "foreign key" if cmd.def_.contype == ConstrType.CONSTR_FOREIGN else "check"
            if context.not_valid is not None and cmd.def_.conname:
                context.not_valid[str(cmd.def_.conname)] = (kind, shown.rstrip("; "))


def validated_in_same_transaction(
    context: OperationContext, statement: Any, where: str, shown: str
) -> Iterator[Raised]:
    """VALIDATE CONSTRAINT of a constraint the same atomic migration added NOT
    VALID: the lock its ADD took is still held while the validation scans."""
    for cmd in statement.cmds:
        added = (context.not_valid or {}).get(str(cmd.name))
        if cmd.subtype != AlterTableType.AT_ValidateConstraint or added is None:
            continue
        kind, statement_shown = added
        start = statement_shown if len(statement_shown) <= 80 else f"{statement_shown[:79]}…"
        if kind == "foreign key":
            yield Raised("DBT202", f"VALIDATE CONSTRAINT {cmd.name} scans {where} in the transaction that "
                         f"added it NOT VALID: the SHARE ROW EXCLUSIVE lock that {start} took is held "
                         f"through the scan, so writes to both tables wait. Validate it in a later "
                         f"migration.", shown)  # fmt: skip
        else:
            yield Raised("DBT204", f"VALIDATE CONSTRAINT {cmd.name} scans {where} in the transaction that "
                         f"added it NOT VALID: the ACCESS EXCLUSIVE lock that {start} took is held "
                         f"through the scan, so reads and writes wait. Validate it in a later "
                         f"migration.", shown)  # fmt: skip


# SET NOT NULL over a validated CHECK (column IS NOT NULL) ---------------------------------


def proves_not_null(expression: Any, column: str) -> bool:
    """column IS NOT NULL, alone or as one side of an AND."""
    if isinstance(expression, pg.BoolExpr) and expression.boolop == BoolExprType.AND_EXPR:
        return any(proves_not_null(arg, column) for arg in expression.args or ())
    return (
        isinstance(expression, pg.NullTest)
        and expression.nulltesttype == NullTestType.IS_NOT_NULL
        and column_name(expression.arg) == column
    )


def not_null_checks(statements: list[Any], known: dict[str, tuple[str, Any, bool]]) -> None:
    """Follow the CHECK constraints through the statements: name -> (table,
    expression, validated)."""
    for statement in statements:
        if not isinstance(statement, pg.AlterTableStmt):
            continue
        table = relation_name(statement)
        for cmd in statement.cmds or ():
            if (
                cmd.subtype == AlterTableType.AT_AddConstraint
                and cmd.def_.contype == ConstrType.CONSTR_CHECK
            ):
                name = str(cmd.def_.conname or f"unnamed {len(known)}")
                known[name] = (table, cmd.def_.raw_expr, not cmd.def_.skip_validation)
            elif cmd.subtype == AlterTableType.AT_ValidateConstraint and str(cmd.name) in known:
                known[str(cmd.name)] = (*known[str(cmd.name)][:2], True)
            elif cmd.subtype == AlterTableType.AT_DropConstraint:
                known.pop(str(cmd.name), None)


def parsed(texts: list[str]) -> list[Any]:
    found = []
    for text in texts:
        try:
            found += [raw.stmt for raw in pglast.parse_sql(text)]
        except pglast.parser.ParseError:
            continue
    return found


def not_null_proven(context: OperationContext, table: str, column: str, earlier: list[Any]) -> bool:
    """Does a validated CHECK (column IS NOT NULL) exist when SET NOT NULL runs: in
    the database, or made by an earlier statement of the plan (`earlier`: those of
    the same operation)?"""
    known: dict[str, tuple[str, Any, bool]] = {}
    for name, definition in context.facts.query(
        CONSTRAINTS_OF, [context.connection.ops.quote_name(table)]
    ):
        read = parsed([f"ALTER TABLE t ADD CONSTRAINT c {definition}"])
        if read:
            known[str(name)] = (table, read[0].cmds[0].def_.raw_expr, True)
    not_null_checks(parsed(context.facts.earlier_sql) + earlier, known)
    return any(
        checked_table == table and validated and proves_not_null(expression, column)
        for checked_table, expression, validated in known.values()
    )
