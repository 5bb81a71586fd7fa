"""Which column type changes keep every value (widenings), and which rewrite a
PostgreSQL table, for any spelling of PostgreSQL, MariaDB or SQLite."""

from __future__ import annotations

import re

VARCHAR = re.compile(r"(?:character varying|varchar)(?:\((\d+)\))?")
NUMERIC = re.compile(r"(?:numeric|decimal)\((\d+),\s*(\d+)\)")
TEXT = {"text", "longtext"}
INTEGER_BITS = {"smallint": 16, "integer": 32, "int": 32, "bigint": 64}
# PostgreSQL's internal names, which SQL may use, and the names format_type() gives.
SYNONYMS = {
    "int2": "smallint",
    "int4": "integer",
    "int8": "bigint",
    "bool": "boolean",
    "float4": "real",
    "float8": "double precision",
    "timestamp": "timestamp without time zone",
    "timestamptz": "timestamp with time zone",
    "time": "time without time zone",
    "timetz": "time with time zone",
}


def column_type(name: str) -> str:
    """A type in one spelling, whoever spelt it: 'integer AUTO_INCREMENT' (MySQL's
    AutoField) is an integer, 'character varying(20)' a varchar(20), 'numeric(12, 2)'
    a numeric(12,2), 'int4' an integer."""
    name = " ".join(name.lower().split()).removesuffix(" auto_increment")
    name = SYNONYMS.get(name, name)
    return re.sub(r",\s*", ",", name.replace("character varying", "varchar"))


def integer_range(name: str) -> tuple[int, int] | None:
    base, _space, unsigned = name.partition(" ")
    bits = INTEGER_BITS.get(base)
    if bits is None or unsigned not in ("", "unsigned"):
        return None
    return (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def widens(old: str, new: str) -> bool:
    """Does every value of type `old` fit type `new` unchanged? A longer varchar,
    varchar to text, a wider integer, a numeric with more precision and the same
    scale: no value can fail to convert. Any spelling of PostgreSQL, MariaDB or SQLite."""
    old, new = column_type(old), column_type(new)
    if old == new:
        return False
    old_varchar, new_varchar = VARCHAR.fullmatch(old), VARCHAR.fullmatch(new)
    if new in TEXT or (new_varchar and not new_varchar.group(1)):
        return bool(old_varchar or old in TEXT)
    if old_varchar and new_varchar and old_varchar.group(1):
        return int(new_varchar.group(1)) > int(old_varchar.group(1))
    old_numeric, new_numeric = NUMERIC.fullmatch(old), NUMERIC.fullmatch(new)
    if old_numeric and new_numeric:
        same_scale = old_numeric.group(2) == new_numeric.group(2)
        return same_scale and int(new_numeric.group(1)) > int(old_numeric.group(1))
    old_range, new_range = integer_range(old), integer_range(new)
    if old_range and new_range:
        return new_range[0] <= old_range[0] and old_range[1] <= new_range[1]
    return False


def rewrites(old: str, new: str) -> bool:
    """Does ALTER COLUMN … TYPE rewrite the table on PostgreSQL? Not for the widenings
    it does in place (binary-coercible: varchar and numeric); a wider integer
    changes the stored width, so it rewrites like any other change."""
    if column_type(old) == column_type(new):
        return False
    return not widens(old, new) or integer_range(column_type(old)) is not None
