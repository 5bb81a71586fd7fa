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

import hashlib
import os
import secrets
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from django.core.management.sql import emit_post_migrate_signal, emit_pre_migrate_signal
from django.db import DatabaseError, connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.models import Model, QuerySet
from django.db.utils import load_backend

from .._compat import state_before_migrating
from ..archive import ArchiveReader
from ..backends import backend_for
from ..backup import backup_database, connect
from ..display import sentence
from ..exceptions import RestoreError
from ..graph import plan_tables
from ..interrupts import tell
from ..storage import BackupFile
from ..storage.catalog import resolve_backup
from .flow import Mode, Progress, RestoreResult, restore_database
from .plan import current_table_label, migration_renames, prepare_restore

SCRATCH_PREFIX = "dbtools_scratch_"
SCRATCH_FOLDER_PREFIX = (
    "dbtools-scratch-"  # SQLite: dbtools-scratch-<pid>-<random> in the temp folder
)


def host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


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
    from .plan import NATURAL_KEYS
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
        backed_up = [section.meta["label"] for section in reader.tables()]
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
                f"migrations ({', '.join(sorted(backed_up)) or 'none'}); nothing was changed."
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
            f"or without --replay. Nothing was changed."
        )
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


class Scratch:
    def __init__(self, alias: str, name: str, target_name: str) -> None:
        self.alias, self.name, self.target_name = alias, name, target_name


@contextmanager
def scratch_database(target: BaseDatabaseWrapper) -> Iterator[Scratch]:
    """A new, empty database of the target's vendor, as a connection alias."""
    run = f"{host_tag()}_{os.getpid()}_{secrets.token_hex(3)}"
    name = SCRATCH_PREFIX + run
    settings = dict(target.settings_dict)
    folder = None
    remove_leftover_folders()
    if backend_for(target).database_is_file:
        folder = tempfile.mkdtemp(prefix=f"{SCRATCH_FOLDER_PREFIX}{os.getpid()}-")
        settings["NAME"] = os.path.join(folder, "scratch.sqlite3")
    else:
        if target.in_atomic_block:
            # PostgreSQL refuses CREATE DATABASE in a transaction; MariaDB
            # would commit the caller's open transaction first.
            raise RestoreError(
                f"A replay or drill makes a scratch database beside "
                f"{target.settings_dict.get('NAME')!r}, which cannot be done inside the open "
                f"transaction on it (transaction.atomic()); call it outside one. Nothing was "
                f"changed."
            )
        drop_leftovers(target)
        create_database(target, name)
        settings["NAME"] = name
    settings["TEST"] = {**settings.get("TEST", {}), "NAME": settings["NAME"]}
    alias = f"dbtools_scratch_{run}"
    # Registered as a connection, not in DATABASES: the project's settings
    # stay as they are, and nothing else can pick the alias up.
    connections[alias] = load_backend(settings["ENGINE"]).DatabaseWrapper(settings, alias)
    try:
        yield Scratch(alias, settings["NAME"], str(target.settings_dict.get("NAME")))
    finally:
        connections[alias].close()
        del connections[alias]
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            drop_database(target, name)


def create_database(target: BaseDatabaseWrapper, name: str) -> None:
    quote = target.ops.quote_name
    suffix = backend_for(target).create_database_options
    try:
        with target.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {quote(name)}{suffix}")
    except DatabaseError as exc:
        user = target.settings_dict.get("USER") or "your user"
        grant = backend_for(target).create_database_grant(user, SCRATCH_PREFIX)
        raise RestoreError(
            f"Replay needs a scratch database beside {target.settings_dict.get('NAME')!r}, and creating "
            f"{name} failed: {' '.join(str(exc).split())}. Grant it ({grant}) or restore without "
            f"--replay. Nothing was changed."
        ) from exc


def drop_database(target: BaseDatabaseWrapper, name: str) -> None:
    with target.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {target.ops.quote_name(name)}")


def drop_leftovers(target: BaseDatabaseWrapper) -> None:
    """Scratch databases of this host whose process is gone (a replay killed mid-way)."""
    sql = backend_for(target).databases_like_sql
    with target.cursor() as cursor:
        cursor.execute(sql, [f"{SCRATCH_PREFIX}{host_tag()}\\_%"])
        names = [row[0] for row in cursor.fetchall()]
    for name in names:
        pid = name.removeprefix(SCRATCH_PREFIX).split("_")[1]
        if pid.isdigit() and not process_alive(int(pid)):
            try:
                drop_database(target, name)
            except DatabaseError:
                # Another user's (its owner may drop it): not this run's to
                # remove, and no reason to refuse this run's own replay.
                continue


PRIVATE_FOLDER_PREFIXES = (SCRATCH_FOLDER_PREFIX, "dbtools-replay-", "dbtools-drill-")


def remove_leftover_folders() -> list[str]:
    """Our private temporary folders whose process is gone (a replay or drill
    killed mid-way): a SQLite scratch database, a carried-forward copy. They
    may hold the plaintext rows of an encrypted backup. Returns their names."""
    removed = []
    for prefix in PRIVATE_FOLDER_PREFIXES:
        for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
            pid = folder.name.removeprefix(prefix).split("-")[0]
            if (
                pid.isdigit()
                and folder.is_dir()
                and not folder.is_symlink()
                and folder.stat().st_uid == os.getuid()
                and not process_alive(int(pid))
            ):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
    return removed


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ScratchRouter:
    """Sends every ORM query that names no database, in the thread that uses
    the scratch database, to it: the router list is the whole process's, and
    other threads (a web server's, a worker's) have no such alias. Naming it
    rather than `default` keeps the per-alias caches (content types) apart."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.thread = threading.get_ident()

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return self.alias if threading.get_ident() == self.thread else None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return self.alias if threading.get_ident() == self.thread else None


@contextmanager
def scratch_only(scratch: Scratch) -> Iterator[None]:
    """While the scratch database is in use, it *is* every database alias.

    Migrations reach databases in more ways than the ORM's routing: a data
    migration may use `django.db.connection`, pass `using="default"`, call
    `create_permissions()` or `call_command()`, each of which asks for an
    alias by name. Every alias in DATABASES is pointed at the scratch
    connection for this thread (Django's connections are per thread), so none
    of those can reach the user's databases; the originals come back after.
    Per-alias caches (content types, sites) are emptied on the way in and out,
    so no id read from one database is used in the other.
    """
    wrapper = connections[scratch.alias]
    saved = {alias: connections[alias] for alias in connections.settings}
    scratch_router = ScratchRouter(scratch.alias)
    clear_alias_caches()
    router.routers.insert(0, scratch_router)
    for alias in saved:
        connections[alias] = wrapper
    try:
        yield
    finally:
        for alias, connection in saved.items():
            connections[alias] = connection
        router.routers.remove(scratch_router)
        clear_alias_caches()


def clear_alias_caches() -> None:
    from django.apps import apps

    if apps.is_installed("django.contrib.contenttypes"):
        from django.contrib.contenttypes.models import ContentType

        ContentType.objects.clear_cache()
    if apps.is_installed("django.contrib.sites"):
        from django.contrib.sites.models import Site

        Site.objects.clear_cache()


@contextmanager
def private_folder(prefix: str) -> Iterator[Path]:
    """A folder only this user can read, named with this process's id so that
    the next run can remove it if this one is killed (`remove_leftover_folders`)."""
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
