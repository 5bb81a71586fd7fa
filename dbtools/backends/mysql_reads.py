"""MariaDB writes the backup's row lines itself (used through backends.mysql).

Each row's line is built by the server with CONCAT, JSON_QUOTE and friends, in
exactly the form archive/codec.py writes for the values Django would read, so
Python mostly moves bytes. Nothing is left to chance:

- the server's JSON_QUOTE is asked once whether it escapes text as orjson does
  (quotes_as_orjson); MySQL, whose escaping was never compared, is not asked;

- a table goes by the server only if every column is of a kind spelled out
  below, stored in the column type Django gives that kind (read from
  information_schema, so a legacy or hand-made schema is caught), in a UTF-8
  character set, through a field with no conversion of its own (from_db_value);
  TIMESTAMP columns and datetimes Django reads in a zone other than UTC leave
  the table to the portable path (backup/rows.py);
- floats are written by Python from Django's value, between the server's pieces
  of the line: the driver's text of a double is not orjson's;
- a value outside the forms whose rendering is proved here (a zero date, a
  UUID that is not 32 hex digits, a time outside one day) makes the server
  return no line for its row, and Python sets aside lines the portable path
  writes otherwise (not_as_written); those rows are read again by the portable
  path, in the same snapshot, and put in their place.

tests/test_backup_mariadb_lines.py compares the lines of both paths byte for
byte, on generated and on hand-written rows.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings
from django.db import DatabaseError, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Field, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.fields.related import ForeignKey

from ..archive.codec import JSON_NULL_KEY, AnyField, encoder_for, kind_of, value_field
from ..graph import Table

COLUMNS_SQL = """
SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME, IS_NULLABLE = 'YES', NUMERIC_SCALE
FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s
"""

INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint"})
TEXT_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext"})
# The column types each kind may be stored in, as Django creates them.
COLUMN_TYPES = {
    "int": INTEGER_TYPES,
    "duration": frozenset({"bigint"}),
    "bool": frozenset({"tinyint"}),
    "str": TEXT_TYPES,
    "uuid": frozenset({"uuid", "char", "varchar"}),
    "datetime": frozenset({"datetime"}),
    "date": frozenset({"date"}),
    "time": frozenset({"time"}),
    "decimal": frozenset({"decimal"}),
    "binary": frozenset({"tinyblob", "blob", "mediumblob", "longblob", "binary", "varbinary"}),
    "json": frozenset({"longtext", "json"}),
    "float": frozenset({"double"}),
}
UTF8 = frozenset({"utf8mb4", "utf8mb3", "utf8"})
# The converters Django's own fields add; any other (a field's from_db_value)
# changes values in ways the server cannot know.
PLAIN_CONVERTERS = (
    Field.get_db_converters,
    models.DurationField.get_db_converters,
    ForeignKey.get_db_converters,
)
# JSON_QUOTE writes these escapes in upper case, orjson in lower case.
UPPER_CASE_ESCAPE = re.compile(rb"\\u00(?:0[BEF]|1[A-F])")

# A valid date: MySQLdb reads a zero or impossible one as None.
REAL_DATE = "(YEAR({c}) > 0 AND MONTH({c}) > 0 AND DAY({c}) BETWEEN 1 AND DAY(LAST_DAY({c})))"
# Spelled by code, whatever NO_BACKSLASH_ESCAPES says.
NEWLINE, TAB = (f"CHAR({n} USING utf8mb4)" for n in (10, 9))
FRACTION = "IF(MICROSECOND({c}) = 0, '', CONCAT('.', LPAD(MICROSECOND({c}), 6, '0')))"


class Column:
    """How one column `c` (quoted) becomes its JSON text: `value` (SQL, NULL for
    SQL NULL); `exact`, where only some stored values are rendered as Django
    reads them, the SQL test for those; `json_null`, the test for JSON null."""

    def __init__(
        self, c: str, value: str, exact: str | None = None, json_null: str | None = None
    ) -> None:
        self.c, self.value, self.exact, self.json_null = c, value, exact, json_null
        self.nullable = True

    @property
    def text(self) -> str:
        """The value's JSON text. A NULL where the column holds none (JSON null
        aside) leaves the whole line NULL, and so the row to the portable path."""
        if self.nullable or self.json_null:
            return f"IFNULL({self.value}, 'null')"
        return self.value

    @property
    def by_python(self) -> bool:
        """Written by Python from Django's value, as the portable path writes it."""
        return not self.value


@dataclass(frozen=True)
class Stored:
    """A column as the server holds it: `c` quoted, its type, its decimal
    places, and whether Django reads its datetimes as UTC."""

    c: str
    data_type: str
    scale: int
    utc: bool


def by_python(at: Stored) -> Column:
    return Column(at.c, "")


def uuid_column(at: Stored) -> Column:
    c = at.c
    if at.data_type == "uuid":
        return Column(c, f"CONCAT('\"', {c}, '\"')")
    # uuid.UUID() reads 32 hex digits in either case, and writes them in lower case.
    parts = ", '-', ".join(
        f"SUBSTRING(LOWER({c}), {start}, {length})"
        for start, length in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
    )
    return Column(
        c, f"CONCAT('\"', {parts}, '\"')", f"(CHAR_LENGTH({c}) = 32 AND UNHEX({c}) IS NOT NULL)"
    )


def datetime_column(at: Stored) -> Column | None:
    """Django's value is aware in UTC (USE_TZ, the connection in UTC), or naive."""
    c = at.c
    suffix = "+00:00" if at.utc else "" if not settings.USE_TZ else None
    if suffix is None:
        return None
    return Column(
        c,
        f"CONCAT('\"', DATE_FORMAT({c}, '%%Y-%%m-%%dT%%H:%%i:%%s'), "
        f"{FRACTION.format(c=c)}, '{suffix}\"')",
        REAL_DATE.format(c=c),
    )


def time_column(at: Stored) -> Column:
    # Django reads a time of day; anything outside one day it cannot.
    c = at.c
    return Column(
        c,
        f"CONCAT('\"', TIME_FORMAT({c}, '%%H:%%i:%%s'), {FRACTION.format(c=c)}, '\"')",
        f"({c} >= '00:00:00' AND {c} < '24:00:00')",
    )


def json_column(at: Stored) -> Column:
    c = at.c
    # is_json_null(): under 32 characters, "null" between spaces and tabs
    # (line breaks are set aside). Such text is ASCII, so its length in bytes
    # says the same, without counting characters through long JSON.
    is_null = f"(LENGTH({c}) < 32 AND TRIM(REPLACE({c}, {TAB}, ' ')) = BINARY 'null')"
    # Lines in JSON text are checked by Python's parser and turned into
    # spaces on the portable path: such rows are left to it (not_as_written).
    return Column(c, f"IF({is_null}, NULL, {c})", json_null=is_null)


RENDERINGS: dict[str, Callable[[Stored], Column | None]] = {
    "int": lambda at: Column(at.c, at.c),
    "duration": lambda at: Column(at.c, at.c),
    "bool": lambda at: Column(
        at.c, f"CASE {at.c} WHEN 0 THEN 'false' WHEN 1 THEN 'true' ELSE {at.c} END"
    ),
    "str": lambda at: Column(at.c, f"JSON_QUOTE({at.c})"),
    "uuid": uuid_column,
    "datetime": datetime_column,
    "date": lambda at: Column(
        at.c, f"CONCAT('\"', CAST({at.c} AS CHAR), '\"')", REAL_DATE.format(c=at.c)
    ),
    "time": time_column,
    "decimal": lambda at: Column(at.c, decimal_sql(at.c, at.scale)),
    "binary": lambda at: Column(
        at.c, f"CONCAT('\"', REPLACE(TO_BASE64({at.c}), {NEWLINE}, ''), '\"')"
    ),
    "json": json_column,
    "float": by_python,
}


def decimal_sql(c: str, scale: int) -> str:
    """str() of the Decimal MySQLdb reads: the column's text, except below
    1E-6 (zero included) with more than six places, where str() switches to
    an exponent: "0E-10", "1.200E-7"."""
    text = f"CONCAT('\"', {c}, '\"')"
    if scale <= 6:
        return text
    digits = f"TRIM(LEADING '0' FROM REPLACE(CAST(ABS({c}) AS CHAR), '.', ''))"
    coefficient = f"IF({digits} = '', '0', {digits})"
    exponent = f"CAST(CHAR_LENGTH({coefficient}) - 1 - {scale} AS SIGNED)"
    scientific = (
        f"CONCAT('\"', IF({c} < 0, '-', ''), LEFT({coefficient}, 1), "
        f"IF(CHAR_LENGTH({coefficient}) > 1, CONCAT('.', SUBSTRING({coefficient}, 2)), ''), "
        f"'E', {exponent}, '\"')"
    )
    return f"IF(ABS({c}) >= 0.000001, {text}, {scientific})"


def plain_field(field: AnyField) -> bool:
    """No conversion of the field's own between the driver and the codec."""
    chain = [field, value_field(field)]
    return all(type(f).get_db_converters in PLAIN_CONVERTERS for f in chain) and (
        kind_of(field) == "json"  # read as its text, past any from_db_value
        or not any(hasattr(f, "from_db_value") for f in chain)
    )


def column_types(
    table: Table, connection: BaseDatabaseWrapper
) -> dict[str, tuple[str, str | None, bool, int]]:
    """Column name -> its type, character set, whether it can hold NULL, and
    its decimal places (the column's own: a schema may differ from the field)."""
    with connection.cursor() as cursor:
        cursor.execute(COLUMNS_SQL, [table.db_table])
        return {
            name: (kind, charset, bool(null), int(scale or 0))
            for name, kind, charset, null, scale in cursor.fetchall()
        }


def columns(table: Table, connection: BaseDatabaseWrapper) -> list[Column] | None:
    """Each field's rendering, or None if one of them cannot be rendered exactly."""
    types = column_types(table, connection)
    utc = settings.USE_TZ and connection.timezone_name == "UTC"
    quote = connection.ops.quote_name
    found = []
    for field in table.fields:
        kind = kind_of(field)
        data_type, charset, nullable, scale = types.get(str(field.column), ("", None, True, 0))
        if data_type not in COLUMN_TYPES.get(kind, ()) or not plain_field(field):
            return None
        if charset is not None and charset not in UTF8:
            return None
        c = f"{quote(table.db_table)}.{quote(str(field.column))}"
        column = RENDERINGS[kind](Stored(c, data_type, scale, utc))
        if column is None:
            return None
        column.nullable = nullable
        found.append(column)
    return found


def can_write(table: Table, connection: BaseDatabaseWrapper) -> bool:
    return columns(table, connection) is not None


# Every ASCII character and a few beyond: what JSON_QUOTE is asked to escape.
PROBE = "".join(map(chr, range(128))) + "\u00e9\u2028\u2029\ufeff\U0001f680"


def quotes_as_orjson(connection: BaseDatabaseWrapper) -> bool:
    """Whether this server's JSON_QUOTE writes text as orjson does, but for
    the escapes it writes in upper case (whose rows are read again): MariaDB
    only, asked of the server itself, since another version may escape otherwise."""
    if not getattr(connection, "mysql_is_mariadb", False):
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT CAST(JSON_QUOTE(%s) AS BINARY)", [PROBE])
        (quoted,) = cursor.fetchone()
    lowered = UPPER_CASE_ESCAPE.sub(lambda found: found.group().lower(), bytes(quoted))
    return lowered == orjson.dumps(PROBE)


def line_sql(table: Table, rendered: list[Column]) -> list[tuple[str, list[str]]]:
    """The row's line as bytes, in pieces that go around the columns Python
    writes; the first is NULL where a value is not one the line renders
    exactly. Field names go as parameters."""
    pieces: list[tuple[list[str], list[str]]] = [([], [])]
    for position, (field, column) in enumerate(zip(table.fields, rendered, strict=True)):
        parts, params = pieces[-1]
        params.append(("{" if position == 0 else ",") + orjson.dumps(field.name).decode() + ":")
        parts.append("%s")
        if column.by_python:
            pieces.append(([], []))
        else:
            parts.append(column.text)
    parts, params = pieces[-1]
    nulls = [(f, c.json_null) for f, c in zip(table.fields, rendered, strict=True) if c.json_null]
    if nulls:
        parts.append(json_nulls_sql([test for _, test in nulls]))
        params += json_nulls_params([f.name for f, _ in nulls])
    params.append("}")
    parts.append("%s")
    sql = [f"CONCAT({', '.join(parts)})" for parts, _ in pieces]
    tests = [f"({c.c} IS NULL OR {c.exact})" for c in rendered if c.exact is not None]
    if tests:
        sql[0] = f"CASE WHEN {' AND '.join(tests)} THEN {sql[0]} END"
    return [(f"CAST({s} AS BINARY)", params) for s, (_, params) in zip(sql, pieces, strict=True)]


def json_nulls_sql(tests: list[str]) -> str:
    """The row's list of JSON nulls (codec.py), empty where it has none; one
    column's test is not made twice."""
    if len(tests) == 1:
        return f"IF({tests[0]}, %s, '')"
    names = ", ".join(f"IF({test}, %s, NULL)" for test in tests)
    return f"IF({' OR '.join(tests)}, CONCAT(%s, CONCAT_WS(',', {names}), ']'), '')"


def json_nulls_params(names: list[str]) -> list[str]:
    key = "," + orjson.dumps(JSON_NULL_KEY).decode() + ":["
    if len(names) == 1:
        return [key + orjson.dumps(names[0]).decode() + "]"]
    return [key, *(orjson.dumps(name).decode() for name in names)]


def line_joiner(table: Table, rendered: list[Column]) -> Callable[[tuple[Any, ...]], bytes | None]:
    """A row of the query (the pieces, then Python's columns) -> its line, or
    None where the server could not write it."""
    encoders = [
        encoder_for(kind_of(f)) for f, c in zip(table.fields, rendered, strict=True) if c.by_python
    ]
    if not encoders:
        return lambda row: row[0]
    width = len(encoders) + 1
    dumps = orjson.dumps

    def join(row: tuple[Any, ...]) -> bytes | None:
        if row[0] is None:
            return None
        line = [row[0]]
        for i, encode in enumerate(encoders, start=1):
            value = row[width + i - 1]
            line.append(
                b"null" if value is None else dumps(value if encode is None else encode(value))
            )
            line.append(row[i])
        return b"".join(line)

    return join


def row_batches(
    table: Table, connection: BaseDatabaseWrapper, size: int, keys: list[Any] | None = None
) -> Generator[list[bytes], None, None]:
    """The table's row lines in primary-key order, by keyset pages of `size`
    rows; with `keys`, only the rows with those primary keys. A row the
    server cannot write exactly is read again by the portable path."""
    from ..backup.rows import Unconverted, key_filter, python_batches
    from ..backup.subset_rows import key_chunks

    rendered = columns(table, connection)
    assert rendered is not None, "can_write() said no"
    pk_names = [f.attname for f in table.pk_fields]
    selected: list[Any] = [
        *(RawSQL(sql, params, output_field=Field()) for sql, params in line_sql(table, rendered)),
        *(F(f.attname) for f, c in zip(table.fields, rendered, strict=True) if c.by_python),
        *(Unconverted(F(name), output_field=Field()) for name in pk_names),
    ]
    queryset: QuerySet[Any, tuple[Any, ...]] = (
        QuerySet(model=table.model, using=connection.alias)
        .order_by(*pk_names)
        .values_list(*selected)
    )
    groups: Iterable[Sequence[Any] | None] = (
        [None] if keys is None else key_chunks(table, connection, set(keys))
    )

    def again(found: list[Any]) -> Iterable[bytes]:
        return (line for batch in python_batches(table, connection, [found]) for line in batch)

    join = line_joiner(table, rendered)
    for group in groups:
        chosen = queryset if group is None else queryset.filter(key_filter(table, group))
        yield from pages(PageReader(chosen, size, connection), len(pk_names), join, again)


class PageReader:
    """Keyset pages of a query, the next one asked for before the page in hand
    is written: the server builds its lines while Python hashes and writes
    the last ones. Sent by the driver itself (send_query), as the ORM waits
    for each result; values come through the driver's conversions only, which
    is all the lines, keys and floats read here have (plain_field)."""

    def __init__(
        self, queryset: QuerySet[Any, tuple[Any, ...]], size: int, connection: BaseDatabaseWrapper
    ) -> None:
        self.queryset, self.size, self.connection = queryset, size, connection
        self.raw: Any = connection.connection
        self.pending = False

    def send(self, after: Any) -> None:
        page = (self.queryset if after is None else self.queryset.filter(pk__gt=after))[: self.size]
        sql, params = page.query.get_compiler(connection=self.connection).as_sql()
        with self.connection.wrap_database_errors:
            query = self.raw.cursor().mogrify(sql, params)
            self.raw.send_query(query.encode(self.raw.encoding))
        self.pending = True

    def receive(self) -> list[tuple[Any, ...]]:
        with self.connection.wrap_database_errors:
            self.raw.read_query_result()
            self.pending = False
            return list(self.raw.store_result().fetch_row(0))

    def drain(self) -> None:
        """Read a page asked for but not wanted, so the connection can go on.
        Only a reader stopped early has one, and the reason it stopped (an
        error, an interrupt whose cancel ended this query too) is what is
        raised, not this page's failure."""
        if self.pending:
            with contextlib.suppress(DatabaseError):
                self.receive()


def pages(
    reader: PageReader,
    key_width: int,
    join: Callable[[tuple[Any, ...]], bytes | None],
    again: Callable[[list[Any]], Iterable[bytes]],
) -> Generator[list[bytes], None, None]:
    """The pages of `reader` (rows ending with their primary key) as lines;
    rows the server could not write are read again first (nothing may be
    pending on the connection then)."""
    reader.send(None)
    try:
        while page := reader.receive():
            lines = [join(row) for row in page]
            redo = set_aside(lines)
            if redo:
                keys = [key_of(page[i], key_width) for i in redo]
                for i, line in zip(redo, again(keys), strict=True):
                    lines[i] = line
            full = len(page) == reader.size
            if full:
                reader.send(key_of(page[-1], key_width))
            yield lines  # type: ignore[misc]
            if not full:
                return
    finally:
        reader.drain()


def key_of(row: tuple[Any, ...], width: int) -> Any:
    return row[-1] if width == 1 else row[-width:]


def set_aside(lines: list[bytes | None]) -> list[int]:
    """The positions of the lines to read again. Most pages hold none of the
    bytes that could call for it, which one look at the whole page tells."""
    if None not in lines:
        page = b"".join(lines)  # type: ignore[arg-type]
        if b"\n" not in page and b"\r" not in page and b"\\u00" not in page:
            return []
    return [i for i, line in enumerate(lines) if line is None or not_as_written(line)]


def not_as_written(line: bytes) -> bool:
    """A line the portable path writes otherwise: one holding a line break (JSON
    text spanning lines: nothing else the server writes holds one raw), or an
    escape JSON_QUOTE writes in upper case (or JSON text holding one: they
    cannot be told apart, and it is read again too)."""
    return (
        b"\n" in line
        or b"\r" in line
        or (b"\\u00" in line and UPPER_CASE_ESCAPE.search(line) is not None)
    )
