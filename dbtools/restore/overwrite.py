"""--overwrite: the rows whose primary key is missing go in (as in a merge),
the rows whose primary key is there take the backup's values, and the rows
that are not in the backup stay as they are: the restore that undoes what a
script changed and keeps what users added since.

Here: choosing the mode, updating a batch's rows that are there (the
database's upsert where it has one, backends' upsert_sql; else row by row
through Django's update compiler), and the dry run's preview, which is a
diff (dbtools.diff) of the backup against the tables in scope.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import orjson
from django.db import connections, models, transaction
from django.db.models import F, Q, QuerySet

from .._compat import json_null
from ..archive.codec import AnyField, JSONText
from ..archive.format import partial_kind
from ..backends import backend_for
from ..diff import DiffResult, diff_database
from ..diff.report import summary_lines
from ..exceptions import ConfigurationError, RestoreError
from ..graph import Table
from .failures import row_pk
from .inserts import BATCH_ERRORS, diagnose, plain_insert_fits, prepared_values
from .mapping import NATURAL_KEYS, key_change

if TYPE_CHECKING:
    from .plan import RestorePlan
    from .strategies import TableLoad

Mode = Literal["merge", "replace", "overwrite"]
# Each mode, as restoredb's plan shows it.
MODES: dict[Mode, str] = {
    "merge": "merge: insert the rows whose primary key is missing, leave existing rows as they are",
    "replace": "REPLACE: empty the tables the backup holds, then load exactly its rows",
    "overwrite": "OVERWRITE: insert the rows whose primary key is missing, give the rows whose "
    "primary key is there the backup's values, leave rows not in the backup as they are",
}


def choose_mode(*, replace: bool = False, overwrite: bool = False) -> Mode:
    """The mode restoredb's --replace and --overwrite ask for."""
    if replace and overwrite:
        raise ConfigurationError(
            "--overwrite and --replace contradict each other: --replace empties the tables "
            "first, --overwrite keeps the rows that are not in the backup; give one.",
            changed=False,
        )
    return "replace" if replace else "overwrite" if overwrite else "merge"


def check_mode(mode: object) -> None:
    if mode not in MODES:
        raise ConfigurationError(
            f"mode must be one of {', '.join(MODES)}, not {mode!r}.", changed=False
        )


PARTIAL_HARM = {
    ("masked", "overwrite"): "--overwrite would give the rows this database holds its fake values",
    ("masked", "replace"): "--replace would put its fake values in place of the rows this "
    "database holds",
    ("subset", "overwrite"): "--overwrite would mix its rows into the ones this database holds",
    ("subset", "replace"): "--replace would leave only its rows in place of the ones this "
    "database holds",
}


def check_partial_backup(
    plan: RestorePlan, mode: Mode, original: tuple[Mapping[str, Any], str] | None = None
) -> None:
    """A masked or subset backup is a development copy: it may fill empty
    tables and merge, never overwrite or replace rows a database holds.

    `original`: the header and file name of the backup the plan's file was
    carried forward from (a replay), which is what the user named."""
    meta, name = original or (plan.meta, plan.path.name)
    refuse_partial(meta, name, plan.covered, plan.using, mode)


def refuse_partial(
    meta: Mapping[str, Any], name: str, tables: Sequence[Table], using: str, mode: Mode
) -> None:
    """check_partial_backup's refusal, for the backup `meta` and `name` describe,
    restored with `mode` into `tables` of `using`."""
    kind = partial_kind(meta)
    if kind is None or mode == "merge":
        return
    holding = [
        t.label
        for t in tables
        # flush and migrate fill these again themselves, from the models
        if t.label.lower() not in NATURAL_KEYS and QuerySet(model=t.model, using=using).exists()
    ]
    if holding:
        what = "holds only some rows" if kind == "subset" else "holds fake personal values"
        raise RestoreError(
            f"{name} is a {kind} backup ({what}): {PARTIAL_HARM[kind, mode]} "
            f"({', '.join(holding[:5])}{', …' if len(holding) > 5 else ''}). Restore it into an "
            f"empty database (`manage.py flush` first), or merge it;",
            changed=False,
        )


def check_keys(plan: RestorePlan, mode: Mode) -> None:
    """--overwrite matches the backup's rows with the table's by primary key: a
    table whose primary key changed since the backup is refused."""
    if mode != "overwrite":
        return
    for mapping in plan.mappings:
        if mapping.table is None or not mapping.rows:  # a table is mapped only in scope
            continue
        if mapping.table.label.lower() in NATURAL_KEYS:
            continue  # matched by natural key
        if change := key_change(mapping):
            raise RestoreError(
                f"{mapping.table.label}: its primary key changed since the backup ({change}), so "
                f"--overwrite cannot tell which of the table's rows each of the backup's rows is.",
                changed=False,
                fix="Restore the table with --replace (it empties the table first), or pass "
                "--replay to carry the rows forward through the migrations since the backup.",
            )


def overwrite_batch(load: TableLoad, rows: list[dict[str, Any]]) -> int:
    """Give the rows of `rows`, whose primary keys the table holds, the backup's
    values of the columns it maps onto, in a savepoint; how many differed
    (only those are written). On an error, the row that fails is named."""
    if not rows:
        return 0
    connection = load.connection
    table = load.table
    updating = load.pipeline.overwritten_fields(load.mapping)
    made_here = load.pipeline.made_here(load.mapping)
    backend = backend_for(connection)
    upsert = backend.upsert_sql(
        table.db_table,
        [str(f.column) for f in load.fields],
        [str(f.column) for f in table.pk_fields],
        [str(f.column) for f in updating],
    )
    try:
        with transaction.atomic(using=connection.alias):
            fits = plain_insert_fits(
                load.fields,
                rows,
                connection,
                [f.attname for f in load.fields if f.attname in made_here],
            )
            if upsert is not None and fits:
                with connection.cursor() as cursor:
                    cursor.executemany(upsert, prepared_values(load.fields, rows, connection))
                    return backend.upserted_rows(cursor.rowcount, len(rows))
            return update_rows(table, updating, rows, connection.alias)
    except BATCH_ERRORS as exc:

        def update_one(row: dict[str, Any]) -> None:
            update_rows(table, updating, [row], connection.alias)

        raise diagnose(table, rows, exc, connection.alias, update_one) from exc


def update_rows(
    table: Table, updating: list[AnyField], rows: list[dict[str, Any]], using: str
) -> int:
    """The portable path: one UPDATE per row through Django's update compiler,
    which prepares each value as it would for save() (expressions included),
    of a row whose values differ; how many did."""
    if not updating:
        return 0
    pk_names = [f.attname for f in table.pk_fields]
    queryset: QuerySet[Any] = QuerySet(model=table.model, using=using)
    exact = backend_for(connections[using]).exact_text
    return sum(
        differing(queryset.filter(pk=row_pk(row, pk_names)), updating, row, exact).update(
            **{f.attname: row[f.attname] for f in updating}
        )
        for row in rows
    )


def differing(
    queryset: QuerySet[Any], fields: list[AnyField], row: dict[str, Any], exact: Any
) -> QuerySet[Any]:
    """The rows of `queryset` whose values of `fields` are not `row`'s. SQL NULL
    matches None only (a JSONField's None filter would match JSON null); text
    is compared by code point, whatever the column's collation (`exact`, the
    backend's exact_text), so that a change of case only is a change."""
    same = Q()
    compared: dict[str, Any] = {}
    for field in fields:
        name, value = field.attname, row[field.attname]
        if value is None:
            same &= Q(**{f"{name}__isnull": True})
            continue
        if isinstance(field, models.CharField | models.TextField):
            compared[f"dbtools_exact_{name}"] = exact(F(name))
            name = f"dbtools_exact_{name}"
        # NOT (a = b) is NULL, not true, where the column is NULL.
        same &= Q(**{name: filter_value(value), f"{field.attname}__isnull": False})
    rows: QuerySet[Any] = queryset.alias(**compared).exclude(same)
    return rows


def filter_value(value: Any) -> Any:
    """`value` as a filter compares it: a JSONText (which compiles to a
    placeholder, not a lookup's right-hand side) as the value it holds."""
    if type(value) is not JSONText:
        return value
    parsed = orjson.loads(value.text)
    return json_null() if parsed is None else parsed


# The dry run's preview ------------------------------------------------------------


def preview(plan: RestorePlan) -> DiffResult:
    """What an overwrite would change, compared row by row: a diff of the
    backup against the tables in scope that it covers (reads only)."""
    labels = [t.label for t in plan.covered]
    if not labels:
        return DiffResult(plan.path.name, f"database {plan.using!r}", [])
    return diff_database(plan.path, using=plan.using, only=labels)


def preview_lines(diff: DiffResult) -> list[str]:
    """Per table: the rows an overwrite would insert (deleted since the
    backup) and update (changed since), with the count per column, and the
    rows it leaves as they are; a table not compared says why, and one
    matched by natural key says so."""
    lines: list[str] = []
    for table in diff.tables:
        if table.label.lower() in NATURAL_KEYS:
            # The load matches these by natural key and never updates a row
            # there, so the diff's by-id "to update" would be untrue.
            lines.append(
                f"  {table.label}: matched by natural key; rows already there are left as they are"
            )
            continue
        if not table.compared:
            lines.extend(f"  {line}" for line in summary_lines(table))
            continue
        columns = ", ".join(f"{name} {n:,}" for name, n in table.columns.items())
        counts = [
            f"{n:,} {what}"
            for n, what in (
                (table.only_in_backup, "to insert"),
                (table.changed, f"to update ({columns})" if columns else "to update"),
                (table.same, "identical"),
                (table.only_in_database, "not in the backup, left as they are"),
            )
            if n
        ]
        lines.append(f"  {table.label}: {', '.join(counts) or 'no rows'}")
        lines.extend(f"    schema: {change}" for change in table.schema_changes)
    return lines


__all__ = [
    "MODES",
    "Mode",
    "check_partial_backup",
    "choose_mode",
    "overwrite_batch",
    "preview",
    "preview_lines",
]
