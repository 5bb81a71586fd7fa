"""Replay: restore a backup through the project's own migrations.

A backup restored straight into today's schema gets none of the changes that
data migrations (RunPython, RunSQL) made to the rows since. A replay loads
the rows at the backup's own schema in a scratch database, migrates that
database forward with the project's migrations, so every RunPython, RunSQL
and AlterField cast transforms the old rows exactly as it transformed the
original ones, and then restores from it into the target, in one
transaction, with every guarantee of an ordinary restore.

The scratch database is dbtools' own: a SQLite file in a temporary folder
`dbtools-scratch-<pid>-<random>`, or a
PostgreSQL/MariaDB database beside the target named
`dbtools_scratch_<host>_<pid>_<random>`, dropped afterwards; one left by a
run that was killed is removed by the next run on the same host.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import orjson
from django.core.management.sql import emit_post_migrate_signal, emit_pre_migrate_signal
from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.models import Model, QuerySet

from .._compat import state_before_migrating
from ..archive import ArchiveReader
from ..archive.format import outside_subset, partial_kind
from ..backends import connect
from ..backup import backup_database
from ..display import sentence
from ..exceptions import ConfigurationError, RestoreError
from ..graph import plan_tables
from ..interrupts import tell
from ..storage import BackupFile
from ..storage.catalog import resolve_backup
from .flow import Mode, Progress, RestoreResult, restore_database
from .mapping import current_table_label
from .overwrite import refuse_partial
from .plan import prepare_restore
from .scratch import (
    Scratch,
    private_folder,
    scratch_database,
    scratch_only,
)
from .since_backup import migration_renames


def replay_restore(
    path: str | BackupFile | None = None,
    *,
    using: str = "default",
    mode: Mode = "merge",
    only: Sequence[str] = (),
    exclude: Sequence[str] = (),
    set_values: Sequence[str] = (),
    dry_run: bool = False,
    progress: Progress | None = None,
) -> RestoreResult:
    """Restore `path` into `using` through the project's migrations (see the module).

    A target with no tables at all is migrated by Django's own `migrate` once
    the scratch database has carried the rows forward, and is then restored
    with `replace`: what the migrations put in the tables the backup covers
    (a CMS's welcome page, a default site) gives way to the backup's rows, as
    it would have had the original database been migrated instead.
    """
    backup_path = resolve_backup(path)
    into_empty = is_empty(using)
    if into_empty and dry_run:
        raise RestoreError(
            "This database has no tables: a restore would migrate it first (`manage.py migrate`), "
            "then replay the backup into it. A dry run changes nothing, so it stops here."
        )
    original = refuse_partial_early(backup_path, using, mode, into_empty)
    with private_folder("dbtools-replay-") as private:
        carried = carry_forward(backup_path, using, private / "replayed.json", into_empty)
        try:
            if into_empty:
                migrate_empty_target(using)
                mode = "replace"
            plan = prepare_restore(
                carried, using=using, only=only, exclude=exclude, set_values=set_values
            )
            migrations_own = {}
            if mode == "merge":
                migrations_own = tables_as_migrate_makes_them(
                    using, [t.label for t in plan.covered], private
                )
            result = restore_database(
                plan,
                mode=mode,
                dry_run=dry_run,
                progress=progress,
                migrations_own=migrations_own,
                fresh_target=into_empty,
                # The carried file is a whole backup of the scratch database:
                # what it may overwrite is what the user's file may.
                original=original,
            )
        except KeyboardInterrupt as exc:
            if into_empty:
                tell(exc, MIGRATED_FIRST)
            raise
        except Exception as exc:
            # From here on an empty target may have been migrated: whatever
            # stops the restore, the user is told it is empty no longer.
            if not into_empty:
                raise
            raise RestoreError(f"{sentence(str(exc))} {MIGRATED_FIRST}") from exc
    result.path = backup_path  # the file the user named, not the carried copy (gone now)
    return result


def refuse_partial_early(
    backup_path: BackupFile, using: str, mode: Mode, into_empty: bool
) -> tuple[dict[str, Any], str]:
    """The backup's header and name; a masked or subset one is refused before
    the scratch database is made when a table it names, as named today, holds
    rows (the restore checks again the tables the carried rows cover)."""
    with ArchiveReader(backup_path) as reader:
        meta = reader.meta
        named = set()
        if partial_kind(meta) and mode != "merge" and not into_empty:
            named = {label.lower() for label in covered_labels(reader)}
    if named:
        tables = [t for t in plan_tables(using).tables if t.label.lower() in named]
        refuse_partial(meta, backup_path.name, tables, using, mode)
    return meta, backup_path.name


def covered_labels(reader: ArchiveReader) -> list[str]:
    """The labels of the tables the backup covers, in file order: every table
    it holds, less those outside a subset (archive.format.outside_subset)."""
    counts = {section.meta["label"]: sum(1 for _ in section.rows) for section in reader.tables()}
    outside = outside_subset(reader.meta, counts)
    return [label for label in counts if label not in outside]


MIGRATED_FIRST = (
    "The database had no tables and was migrated (`manage.py migrate`) before this restore, so "
    "it now holds the schema and the migrations' own rows (`manage.py showmigrations` shows how "
    "far it got)."
)


def tables_as_migrate_makes_them(using: str, labels: list[str], private: Path) -> dict[str, str]:
    """Of `labels`, the target's tables that hold rows and exactly the rows a
    fresh `manage.py migrate` makes (a CMS's welcome page, a default site),
    with the fingerprint of their rows (`rows_fingerprint`), taken before the
    comparison read them, for the restore to check again in its transaction.

    A merge gives such a table the backup's rows instead: those rows are the
    migrations', not the user's, and had the original database been migrated
    they would not be there. A fresh scratch database is migrated to compare
    with; only tables whose row counts match are read on both sides, and the
    rows are compared as the backup format writes them, except the columns
    whose value each migrate makes anew (`generated_columns`). Content types
    and permissions are left out: a merge maps them by natural key.
    """
    from .mapping import NATURAL_KEYS
    from .scope import rows_fingerprint

    target = connect(using)
    candidates = {
        label: count
        for label, count in row_counts(using, labels).items()
        if count and label.lower() not in NATURAL_KEYS
    }
    if not candidates:
        return {}
    loader = MigrationLoader(target, ignore_no_migrations=True)
    at_target = applied_targets(loader)
    with scratch_database(target) as fresh, scratch_only(fresh):
        migrate(fresh, at_target, "this database's migrations", signals=True)
        fresh_counts = row_counts(fresh.alias, list(candidates))
        candidates = {k: v for k, v in candidates.items() if fresh_counts.get(k) == v}
        if not candidates:
            return {}
        fresh_rows = rows_compared(fresh.alias, sorted(candidates), private / "fresh.json")
    tables = {t.label: t for t in plan_tables(using, only=sorted(candidates)).tables}
    fingerprints = {label: rows_fingerprint(target, tables[label]) for label in candidates}
    target_rows = rows_compared(using, sorted(candidates), private / "target.json")
    return {
        label: fingerprints[label]
        for label in candidates
        if label in target_rows and target_rows[label] == fresh_rows.get(label)
    }


def rows_compared(using: str, labels: list[str], output: Path) -> dict[str, list[bytes]]:
    """Per table, its rows as the backup format writes them, less the columns
    each migrate makes anew, in primary-key order."""
    generated = {
        table.label: generated_columns(table.model)
        for table in plan_tables(using, only=labels).tables
    }
    written = backup_database(
        using=using, output=output, only=labels, exclude=(), encrypt_to=(), announce_result=False
    ).path
    rows: dict[str, list[bytes]] = {}
    with ArchiveReader(written) as reader:
        for section in reader.tables():
            label = section.meta["label"]
            left_out = generated.get(label, set())
            rows[label] = [
                orjson.dumps({k: v for k, v in orjson.loads(line).items() if k not in left_out})
                for line in section.rows
            ]
    return rows


SAME_EACH_CALL = (dict, list, set, tuple, frozenset, str, bytes, int, float, bool)


def generated_columns(model: type[Model]) -> set[str]:
    """Columns whose value a migration makes anew each time it runs: a callable
    default (uuid4, now) or auto_now(_add). Wagtail's pages get a random
    translation_key, so no two migrated databases hold the same welcome page."""
    names: set[str] = set()
    for field in model._meta.concrete_fields:
        # has_default(): a field without one holds NOT_PROVIDED, a class, so
        # callable. A default like dict or list is the same each time: what
        # such a column holds was put there since, so it is compared.
        if (
            (
                field.has_default()
                and callable(field.default)
                and field.default not in SAME_EACH_CALL
            )
            or getattr(field, "auto_now", False)
            or getattr(field, "auto_now_add", False)
        ):
            names.update({field.attname, str(field.column)})
    return names


def row_counts(using: str, labels: list[str]) -> dict[str, int]:
    wanted = {label.lower() for label in labels}
    return {
        table.label: QuerySet(model=table.model, using=using).count()
        for table in plan_tables(using).tables
        if table.label.lower() in wanted
    }


def carry_forward(
    backup_path: BackupFile, using: str, output: Path, into_empty: bool = False
) -> BackupFile:
    """The backup's rows as this project's migrations make them, written to `output`.

    The rows are loaded into a scratch database at the backup's migrations,
    that database is migrated to the target's (every migration, for an empty
    target) with Django's pre- and post-migrate signals, as `migrate` would,
    and its tables are backed up. Nothing here reaches the target: while the
    scratch database exists it is every connection alias (`scratch_only`).
    """
    target = connect(using)
    with ArchiveReader(backup_path) as reader:
        recorded = reader.meta.get("migrations", {})
        backed_up = covered_labels(reader)
    loader = MigrationLoader(target, ignore_no_migrations=True)
    at_backup = migration_targets(loader, recorded)
    if into_empty:
        at_target: list[tuple[str, str | None]] = list(loader.graph.leaf_nodes())
    else:
        at_target = applied_targets(loader)
    model_renames, _ = migration_renames(loader, recorded)
    with scratch_database(target) as scratch, scratch_only(scratch):
        migrate(scratch, at_backup, "the backup's migrations")
        # Tables that existed at the backup's migrations but that it does not
        # hold were left out on purpose (--only, --exclude): a --replace of the
        # carried rows must not empty them. Tables made since are carried: a
        # data migration may have filled them from the backup's rows.
        left_out = {
            current_table_label(label, model_renames).lower()
            for label in plan_tables(scratch.alias).labels()
            if label.lower() not in {b.lower() for b in backed_up}
        }
        restore_database(
            prepare_restore(backup_path, using=scratch.alias),
            mode="replace",
            announce_result=False,
        )
        migrate(scratch, at_target, "this database's migrations", signals=True)
        present = [
            label for label in plan_tables(scratch.alias).labels() if label.lower() not in left_out
        ]
        covered = {current_table_label(label, model_renames).lower() for label in backed_up}
        if not covered & {label.lower() for label in present}:
            raise RestoreError(
                f"None of the tables in {backup_path.name} exists in this project after its "
                f"migrations ({', '.join(sorted(backed_up)) or 'none'});",
                changed=False,
            )
        return backup_database(
            using=scratch.alias,
            output=output,
            only=sorted(present),
            exclude=(),
            # Plain, like the scratch database it comes from: both live only in
            # private temporary places for the length of the replay.
            encrypt_to=(),
            announce_result=False,
        ).path


Route = Literal["restore", "replay", "migrate and replay"]


def restore_route(using: str, *, replay: bool = False, no_replay: bool = False) -> Route:
    """How a restore into `using` goes: straight (prepare_restore, then
    restore_database), through a replay (asked for), or, into a database
    with no tables (unless `no_replay`), through a replay that migrates it
    first and then replaces what the migrations made."""
    if replay and no_replay:
        raise ConfigurationError("--replay and --no-replay contradict each other; give one.")
    if replay:
        return "replay"
    if not no_replay and is_empty(using):
        return "migrate and replay"
    return "restore"


def is_empty(using: str) -> bool:
    """No table at all: a database made for this project and never migrated."""
    connection = connect(using)
    with connection.cursor() as cursor:
        return not connection.introspection.table_names(cursor)


def migrate_empty_target(using: str) -> None:
    """Django's own migrate, signals and all, into a database with no tables."""
    from django.core.management import call_command

    call_command("migrate", database=using, interactive=False, verbosity=0)


def applied_targets(loader: MigrationLoader) -> list[tuple[str, str | None]]:
    """Per migrated app, its last applied migration (None: none applied): the
    targets that migrate another database to this one's schema."""
    return [
        (app, names[-1] if names else None)
        for app, names in applied_per_app(loader).items()
        if app in loader.migrated_apps
    ]


def applied_per_app(loader: MigrationLoader) -> dict[str, list[str]]:
    """This database's applied migrations, per app, in the order they run."""
    applied = set(loader.applied_migrations)
    per_app: dict[str, list[str]] = {app: [] for app in loader.migrated_apps}
    for leaf in loader.graph.leaf_nodes():
        for key in loader.graph.forwards_plan(leaf):
            if key in applied and key[1] not in per_app.setdefault(key[0], []):
                per_app[key[0]].append(key[1])
    return per_app


def migration_targets(
    loader: MigrationLoader, recorded: dict[str, list[str]]
) -> list[tuple[str, str | None]]:
    """Per app, the migration to stop at to reach the schema the backup was taken at.

    A recorded migration that a squashed one replaces maps to it; one that no
    longer exists at all stops the replay, named.
    """
    wanted = recorded_nodes(loader, recorded)
    targets: list[tuple[str, str | None]] = []
    for app in sorted(loader.migrated_apps):
        keys = wanted.get(app)
        if not keys:
            targets.append((app, None))
            continue
        order = [
            k for leaf in loader.graph.leaf_nodes(app) for k in loader.graph.forwards_plan(leaf)
        ]
        targets.append([k for k in order if k in keys][-1])
    return targets


def recorded_nodes(
    loader: MigrationLoader, recorded: dict[str, list[str]]
) -> dict[str, set[tuple[str, str]]]:
    """The backup's recorded migrations as this project's graph nodes, per app."""
    nodes = loader.graph.nodes
    replaced_by = {old: key for key, m in nodes.items() for old in (m.replaces or [])}
    missing = []
    wanted: dict[str, set[tuple[str, str]]] = {}
    for app, names in recorded.items():
        if app not in loader.migrated_apps:
            continue  # not installed here: nothing of it can be restored anyway
        for name in names:
            key = (app, name)
            key = key if key in nodes else replaced_by.get(key, key)
            if key not in nodes:
                missing.append(f"{app}.{name}")
            else:
                wanted.setdefault(app, set()).add(key)
    if missing:
        raise RestoreError(
            f"The backup's database had migrations that this project no longer has: {', '.join(missing)}. "
            f"A replay needs them to rebuild the backup's schema; restore from a checkout that has them, "
            f"or without --replay.",
            changed=False,
        )
    return wanted


def migrate(
    scratch: Scratch, targets: list[tuple[str, str | None]], what: str, signals: bool = False
) -> None:
    """Migrate the scratch database; with `signals`, as `manage.py migrate` does.

    The signals matter for a carried-forward restore: pre_migrate lets
    contenttypes rename a renamed model's content type (keeping its id and
    permissions), post_migrate creates the content types and permissions of
    models added since the backup. Without them a --replace would drop those.
    """
    connection = connections[scratch.alias]
    try:
        executor = MigrationExecutor(connection)
        if not signals:
            executor.migrate(targets)
            return
        plan = executor.migration_plan(targets)
        before = state_before_migrating(executor)
        emit_pre_migrate_signal(0, False, scratch.alias, apps=before.apps, plan=plan)
        after = executor.migrate(targets, plan=plan, state=before.clone())
        after.clear_delayed_apps_cache()
        emit_post_migrate_signal(0, False, scratch.alias, apps=after.apps, plan=plan)
    except Exception as exc:
        raise RestoreError(
            f"Replay: migrating the scratch database to {what} failed: {' '.join(str(exc).split())}. "
            f"Nothing was written to {scratch.target_name!r}: while the migrations ran, every "
            f"database alias of this thread was the scratch database."
        ) from exc
