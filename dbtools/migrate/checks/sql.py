"""SQL as the database reads it. Each backend names its parser (`sql_parser`):
PostgreSQL's own grammar (pglast, libpg_query) for PostgreSQL, sqlglot in the
backend's dialect for the others. A statement is judged by what it is (DROP,
TRUNCATE, ALTER TABLE … DROP COLUMN or RENAME), never by words that happen to
appear in it (a string, a comment, a type such as numeric(12, 2))."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pglast
import sqlglot
from django.db.backends.base.base import BaseDatabaseWrapper
from pglast import ast as pg
from pglast.enums import AlterTableType, ConstrType, NullTestType, ObjectType

from ...backends import backend_for
from .sql_reads import (
    pg_cascaded,
    pg_dropped_columns,
    pg_emptied,
    pg_moves_schema,
    sqlglot_created,
    sqlglot_dropped_columns,
    sqlglot_emptied,
    sqlglot_renames,
)

# Only for what the parser cannot read (see statements()).
DESTRUCTIVE_SQL = re.compile(r"\b(DROP\s+(TABLE|COLUMN|SCHEMA|DATABASE)|TRUNCATE)\b", re.I)
RENAME_SQL = re.compile(r"\bRENAME\b", re.I)
# Django's own DDL for the sqlglot dialects; MariaDB and MySQL quote names with backticks.
QUOTED = r'"((?:[^"]|"")+)"'
CREATE_TABLE = re.compile(
    rf"^\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:{QUOTED}|`((?:[^`]|``)+)`)", re.I
)
DESTROYED_OBJECTS = {ObjectType.OBJECT_TABLE, ObjectType.OBJECT_SCHEMA, ObjectType.OBJECT_DATABASE}
RENAMED_OBJECTS = {ObjectType.OBJECT_TABLE, ObjectType.OBJECT_COLUMN}
# What gives a column added NOT NULL a value in the rows already there.
VALUE_GIVING = {ConstrType.CONSTR_DEFAULT, ConstrType.CONSTR_IDENTITY, ConstrType.CONSTR_GENERATED}
SERIAL_TYPES = {"smallserial", "serial", "bigserial", "serial2", "serial4", "serial8"}


@dataclass(frozen=True)
class Statement:
    text: str
    destroys: bool  # drops a table, column, schema or database, or truncates
    renames: bool  # renames a table or column
    # Where the parser names them (PostgreSQL): the tables a DROP TABLE and nothing
    # else removes, whether it has IF EXISTS, and the tables the statement makes
    # new (CREATE [TEMP] TABLE [AS], SELECT INTO). Names without a schema only.
    drops: tuple[str, ...] = ()
    drops_if_exists: bool = False
    creates: tuple[str, ...] = ()
    dropped_columns: tuple[tuple[str, str], ...] = ()  # (table, column) of a DROP COLUMN
    emptied: tuple[str, ...] = ()  # the table a DELETE without WHERE empties
    cascaded: tuple[tuple[str, str], ...] = ()  # (kind, name) a DROP TYPE … CASCADE removes


@dataclass(frozen=True)
class RequiredColumn:
    """A column an ALTER TABLE of SQL makes NOT NULL: added, with a value for the
    rows already there or none, or set NOT NULL."""

    table: str
    column: str
    added: bool
    given_value: bool  # added with a default, identity, generated value or serial type
    text: str  # the statement


def statements(sql: Any, connection: BaseDatabaseWrapper) -> Iterator[Statement]:
    """Each statement of a RunSQL's sql (a string, or a list of strings or
    (sql, params) pairs). What the parser cannot read (a DO block, a dialect's
    own syntax) is judged by its words, so nothing is passed over."""
    reader = reader_for(connection)
    for text in sql_texts(sql):
        read = reader.statements(text)
        if read is None:
            read = [Statement(one_line(text), bool(DESTRUCTIVE_SQL.search(text)),
                              bool(RENAME_SQL.search(text)))]  # fmt: skip
        yield from read


def tables_created(sql: list[str], connection: BaseDatabaseWrapper) -> set[str]:
    """The tables Django's SQL creates, read by the connection's parser."""
    return {table for text in sql for table in reader_for(connection).tables_created(text)}


def created_by_words(text: str) -> set[str]:
    m = CREATE_TABLE.match(text)
    if not m:
        return set()
    return {unquote(m.group(1)) if m.group(1) else m.group(2).replace("``", "`")}


def fills_column(sql: list[str], table: str, column: str, connection: BaseDatabaseWrapper) -> bool:
    """Does Django's SQL fill this column's NULLs with a value? It does for a field
    made NOT NULL with a default: an UPDATE … WHERE col IS NULL on PostgreSQL and
    MariaDB, coalesce(col, default) in SQLite's table rebuild."""
    reader = reader_for(connection)
    return any(reader.fills_column(text, table, column) for text in sql)


class PostgreSQLReader:
    """PostgreSQL's own parser (libpg_query), so statements, ALTER TABLE
    subcommands and type names are read as the server reads them."""

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection

    def statements(self, text: str) -> list[Statement] | None:
        return postgresql_statements(text)

    def tables_created(self, text: str) -> set[str]:
        parsed = parsed_postgresql(text) or []
        return {
            relation_name(s) for s in parsed if isinstance(s, pg.CreateStmt) and self.creates_new(s)
        }

    def creates_new(self, statement: Any) -> bool:
        """Does this CREATE TABLE make a new, empty table where the checks look
        (the connection's schema)? Not a TEMP table, which hides the real one only
        for its own session; not one in another schema; not IF NOT EXISTS of a
        table that is already there."""
        relation = statement.relation
        if relation.relpersistence == "t":
            return False
        if relation.schemaname and relation.schemaname != self.query("SELECT current_schema()"):
            return False
        if statement.if_not_exists:
            quote = self.connection.ops.quote_name
            return self.query("SELECT to_regclass(%s) IS NULL", [quote(relation.relname)]) is True
        return True

    def query(self, sql: str, params: list[Any] | None = None) -> Any:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()[0]

    def fills_column(self, text: str, table: str, column: str) -> bool:
        return any(fills_nulls_update(s, table, column) for s in parsed_postgresql(text) or [])

    def required_columns(self, text: str) -> list[RequiredColumn]:
        found = []
        for statement, part in postgresql_texts(text):
            if not isinstance(statement, pg.AlterTableStmt):
                continue
            for cmd in statement.cmds or ():
                if cmd.subtype == AlterTableType.AT_SetNotNull:
                    found.append(RequiredColumn(relation_name(statement), str(cmd.name), False,
                                                False, one_line(part)))  # fmt: skip
                elif cmd.subtype == AlterTableType.AT_AddColumn and added_required(cmd.def_):
                    found.append(RequiredColumn(relation_name(statement), str(cmd.def_.colname), True,
                                                added_with_value(cmd.def_), one_line(part)))  # fmt: skip
        return found

    def syntax_error(self, text: str) -> str | None:
        """Why the server's own grammar rejects the SQL, or None."""
        try:
            pglast.parse_sql(text)
        except pglast.parser.ParseError as error:
            return f"PostgreSQL's parser rejects it: {error.args[0]}"
        return None


class SqlglotReader:
    """sqlglot in the backend's dialect for RunSQL; Django's own DDL, whose
    shape is known, by its words."""

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection
        self.dialect = backend_for(connection).sql_dialect

    def statements(self, text: str) -> list[Statement] | None:
        return sqlglot_statements(text, self.dialect)

    def tables_created(self, text: str) -> set[str]:
        return created_by_words(text)

    def fills_column(self, text: str, table: str, column: str) -> bool:
        quote = self.connection.ops.quote_name
        col = re.escape(quote(column))
        update = re.compile(rf"^UPDATE\s+{re.escape(quote(table))}\s+SET\s+{col}\s*=(?!\s*NULL\b).*"
                            rf"\bWHERE\s+{col}\s+IS\s+NULL", re.I | re.S)  # fmt: skip
        coalesce = re.compile(rf"coalesce\({col},(?!\s*NULL\s*\))", re.I)
        return bool(update.search(text) or coalesce.search(text))

    # sqlglot is not the server's grammar: what it reads or rejects proves nothing
    # about what the server does, so neither judgement is made from it.
    def required_columns(self, text: str) -> list[RequiredColumn]:
        return []

    def syntax_error(self, text: str) -> str | None:
        return None


READERS: dict[str, type[PostgreSQLReader | SqlglotReader]] = {
    "pglast": PostgreSQLReader,
    "sqlglot": SqlglotReader,
}


def reader_for(connection: BaseDatabaseWrapper) -> PostgreSQLReader | SqlglotReader:
    return READERS[backend_for(connection).sql_parser](connection)


# PostgreSQL: its own parser ----------------------------------------------------------


def parsed_postgresql(text: str) -> list[Any] | None:
    """The statements of `text` as PostgreSQL parses them, or None if it cannot."""
    try:
        return [raw.stmt for raw in pglast.parse_sql(text)]
    except pglast.parser.ParseError:
        return None


def postgresql_texts(text: str) -> list[tuple[Any, str]]:
    """Each statement of `text` with its own text; [] if PostgreSQL cannot parse it."""
    try:
        raws = pglast.parse_sql(text)
    except pglast.parser.ParseError:
        return []
    if len(raws) == 1:
        return [(raws[0].stmt, text)]
    encoded = text.encode()  # libpg_query's locations count bytes
    parts = []
    for raw in raws:
        start = raw.stmt_location or 0
        end = start + raw.stmt_len if raw.stmt_len else len(encoded)
        parts.append((raw.stmt, encoded[start:end].decode()))
    return parts


def postgresql_statements(text: str) -> list[Statement] | None:
    read = postgresql_texts(text)
    # A DO block's body is PL/pgSQL, which the SQL grammar holds as a string.
    if not read or any(isinstance(statement, pg.DoStmt) for statement, _text in read):
        return None
    return [
        Statement(
            one_line(part),
            postgresql_destroys(statement),
            postgresql_renames(statement),
            dropped_tables(statement),
            isinstance(statement, pg.DropStmt) and bool(statement.missing_ok),
            created_tables(statement),
            pg_dropped_columns(statement),
            pg_emptied(statement),
            pg_cascaded(statement),
        )
        for statement, part in read
    ]


def dropped_tables(statement: Any) -> tuple[str, ...]:
    """The tables of a DROP TABLE; () if one of them has a schema, which the checks
    cannot tell from the connection's own table of that name."""
    if not isinstance(statement, pg.DropStmt) or statement.removeType != ObjectType.OBJECT_TABLE:
        return ()
    names = [tuple(str(part.sval) for part in name) for name in statement.objects or ()]
    return tuple(name[0] for name in names) if all(len(name) == 1 for name in names) else ()


def created_tables(statement: Any) -> tuple[str, ...]:
    """The table a CREATE TABLE (not IF NOT EXISTS), CREATE TABLE AS or SELECT INTO
    makes new, without a schema."""
    relation: Any = None
    if isinstance(statement, pg.CreateStmt) and not statement.if_not_exists:
        relation = statement.relation
    elif isinstance(statement, pg.CreateTableAsStmt) and not statement.if_not_exists:
        relation = statement.into.rel if statement.into else None
    elif isinstance(statement, pg.SelectStmt) and statement.intoClause:
        relation = statement.intoClause.rel
    return (str(relation.relname),) if relation is not None and not relation.schemaname else ()


def postgresql_destroys(statement: Any) -> bool:
    if isinstance(statement, pg.TruncateStmt):
        return True
    if isinstance(statement, pg.DropStmt):
        return statement.removeType in DESTROYED_OBJECTS
    if isinstance(statement, pg.AlterTableStmt):
        return any(cmd.subtype == AlterTableType.AT_DropColumn for cmd in statement.cmds or ())
    return False


def postgresql_renames(statement: Any) -> bool:
    renames = isinstance(statement, pg.RenameStmt) and statement.renameType in RENAMED_OBJECTS
    return renames or pg_moves_schema(statement)


def fills_nulls_update(statement: Any, table: str, column: str) -> bool:
    """UPDATE table SET column = <not NULL> WHERE column IS NULL."""
    if not isinstance(statement, pg.UpdateStmt) or relation_name(statement) != table:
        return False
    test = statement.whereClause
    if not (isinstance(test, pg.NullTest) and test.nulltesttype == NullTestType.IS_NULL):
        return False
    if column_name(test.arg) != column:
        return False
    return any(
        target.name == column and not (isinstance(target.val, pg.A_Const) and target.val.isnull)
        for target in statement.targetList or ()
    )


def added_required(column: Any) -> bool:
    kinds = {constraint.contype for constraint in column.constraints or ()}
    return bool(column.is_not_null) or bool(
        kinds & {ConstrType.CONSTR_NOTNULL, ConstrType.CONSTR_PRIMARY}
    )


def added_with_value(column: Any) -> bool:
    """A DEFAULT that is not NULL, an identity, a generated column or a serial type."""
    if str(column.typeName.names[-1].sval) in SERIAL_TYPES:
        return True
    return any(
        c.contype in VALUE_GIVING
        and not (
            c.contype == ConstrType.CONSTR_DEFAULT
            and isinstance(c.raw_expr, pg.A_Const)
            and c.raw_expr.isnull
        )
        for c in column.constraints or ()
    )


def column_name(node: Any) -> str | None:
    last = node.fields[-1] if isinstance(node, pg.ColumnRef) and node.fields else None
    return str(last.sval) if isinstance(last, pg.String) else None


def relation_name(statement: Any) -> str:
    """The table a parsed statement is about, without its schema."""
    return str(statement.relation.relname)


# SQLite and MySQL: sqlglot in the backend's dialect ------------------------------------


def sqlglot_statements(text: str, dialect: str | None) -> list[Statement] | None:
    try:
        with quiet_parser():
            parsed = [e for e in sqlglot.parse(text, read=dialect) if e is not None]
    except sqlglot.errors.SqlglotError:
        return None
    if not parsed or any(isinstance(e, sqlglot.exp.Command) for e in parsed):
        return None
    return [
        Statement(
            one_line(e.sql(dialect=dialect)),
            sqlglot_destroys(e),
            sqlglot_renames(e),
            creates=sqlglot_created(e),
            dropped_columns=sqlglot_dropped_columns(e),
            emptied=sqlglot_emptied(e),
        )
        for e in parsed
    ]


@contextmanager
def quiet_parser() -> Iterator[None]:
    """sqlglot logs a warning for each statement it reads as a plain Command."""
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def sqlglot_destroys(expression: Any) -> bool:
    exp = sqlglot.exp
    if isinstance(expression, exp.TruncateTable):
        return True
    if isinstance(expression, exp.Drop):
        return str(expression.args.get("kind") or "").upper() in {"TABLE", "SCHEMA", "DATABASE"}
    return bool(sqlglot_dropped_columns(expression))


# Text ----------------------------------------------------------------------------------


def unquote(name: str) -> str:
    return name.replace('""', '"')


def one_line(sql: str) -> str:
    return " ".join(sql.split())


def unparameterised_texts(sql: Any) -> list[str]:
    """The items of RunSQL's sql that run as written: a (sql, params) pair holds
    placeholders that are no SQL until the driver fills them."""
    if sql is None or sql == "":
        return []
    if isinstance(sql, str):
        return [sql]
    return [item if isinstance(item, str) else str(item[0]) for item in sql
            if isinstance(item, str) or len(item) < 2 or not item[1]]  # fmt: skip


def sql_texts(sql: Any) -> list[str]:
    """RunSQL's sql or reverse_sql: a string, or a list of strings and (sql, params) pairs."""
    if sql is None or sql == "":
        return []
    if isinstance(sql, str):
        return [sql]
    return [item if isinstance(item, str) else str(item[0]) for item in sql]
