"""Django internals dbtools relies on, each in one place with the Django
versions it is pinned for (5.2 and 6.1) and the test that fails if a new
release moves it. A Django upgrade that breaks one breaks here, and in the
test named beside it, rather than deep inside a restore."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from io import StringIO
from typing import Any, TextIO

from django.core.management import call_command
from django.core.management.base import OutputWrapper
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.state import ProjectState
from django.db.models import Field, Model, QuerySet


def state_before_migrating(executor: MigrationExecutor) -> ProjectState:
    """The project state of the applied migrations, as `manage.py migrate`
    builds it before emitting pre_migrate (`MigrationExecutor._create_project_state`).
    Pinned by tests/test_replay.py::test_a_replay_creates_the_content_types_migrate_would
    and tests/test_migration_checks.py::test_a_column_added_earlier_in_the_plan_holds_only_its_default."""
    state: ProjectState = executor._create_project_state(  # type: ignore[attr-defined]
        with_applied_migrations=True
    )
    return state


def insert_raw(
    model: type[Model], using: str, objects: Sequence[Any], fields: Sequence[Field[Any, Any]]
) -> None:
    """INSERT the objects' values as they are, no save() and no signals, as
    loaddata does (`QuerySet._insert(raw=True)`). Pinned by every restore on
    SQLite and MariaDB, e.g. tests/test_restore.py::test_foreign_key_to_nowhere_fails_and_names_the_row."""
    QuerySet(model=model, using=using)._insert(  # type: ignore[attr-defined]
        objects, fields=fields, raw=True
    )


@contextmanager
def queries_not_logged(connection: BaseDatabaseWrapper) -> Iterator[None]:
    """With DEBUG = True Django keeps the SQL of the last 9,000 queries with
    their parameters written out, which makes a restore's memory grow with its
    rows: this connection's cursors skip the log (`make_debug_cursor`) for the
    body. Pinned by tests/test_restore.py::test_a_restore_keeps_no_query_log_under_debug."""
    connection.make_debug_cursor = connection.make_cursor  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        del connection.make_debug_cursor


@contextmanager
def router_first(router: Any, extra: object) -> Iterator[None]:
    """`extra` asked before DATABASE_ROUTERS (`ConnectionRouter.routers`, a
    cached list). Pinned by
    tests/test_replay.py::test_a_replay_that_fails_mid_way_gives_back_every_connection_and_router."""
    router.routers.insert(0, extra)
    try:
        yield
    finally:
        router.routers.remove(extra)


@contextmanager
def mysql_sql_mode_seen(connection: BaseDatabaseWrapper, modes: set[str]) -> Iterator[None]:
    """Django caches MariaDB's sql_mode (`DatabaseWrapper.sql_mode`, a cached
    property read on another connection) and refuses id 0 unless it sees
    NO_AUTO_VALUE_ON_ZERO there (`features.allows_auto_pk_0`): both see
    `modes` for the body. Pinned by tests/test_restore.py::test_explicit_id_zero_is_kept_on_mariadb."""
    cached = connection.__dict__.get("sql_mode")
    connection.__dict__["sql_mode"] = modes
    connection.features.__dict__.pop("allows_auto_pk_0", None)
    try:
        yield
    finally:
        if cached is None:
            connection.__dict__.pop("sql_mode", None)
        else:
            connection.__dict__["sql_mode"] = cached
        connection.features.__dict__.pop("allows_auto_pk_0", None)


def underlying_stream(wrapper: OutputWrapper) -> TextIO:
    """The stream a command's stdout/stderr wraps (`OutputWrapper._out`), for
    progress bars that test whether it is a terminal. Pinned by every
    safemigrate command test (tests/test_safemigrate.py), which passes it on."""
    stream: TextIO = wrapper._out  # type: ignore[assignment]
    return stream


def migrate_plan_keys(using: str, args: list[str]) -> list[tuple[str, str]]:
    """The (app_label, name) of each line of `manage.py migrate --plan` that
    names a migration, in order: Django resolves `migrate`'s arguments
    (zero, squashed and partial names) there and in no public function. Lines
    of an operation's description that break look like names too; the caller
    keeps those in the migration graph. Pinned by
    tests/test_safemigrate.py::test_migrate_runs_only_the_plan_that_was_shown."""
    out = StringIO()
    call_command("migrate", *args, database=using, plan=True, no_color=True, stdout=out)
    keys = []
    for line in out.getvalue().splitlines()[1:]:
        if line and not line.startswith(" "):  # else an operation, or "  No planned …"
            app, _dot, name = line.partition(".")
            keys.append((app, name))
    return keys


def json_null() -> Any:
    """What a JSONField's exact lookup takes to match JSON null: JSONNull() from
    Django 6.1, which deprecates None for it; None before. Pinned by
    tests/test_restore_overwrite.py::test_sql_null_and_json_null_are_told_apart."""
    try:
        from django.db.models import JSONNull  # type: ignore[attr-defined,unused-ignore]
    except ImportError:  # Django 5.2
        return None
    return JSONNull()
