"""restoredb --replay: a backup taken before a data migration, restored after
it, comes back as Django's own migrate made those rows, on every backend.

tests/replaylab is the reference document's "complex transformation": a
free-text delivery_schedule parsed by RunPython into billing_interval and
billing_interval_count (0002), then the text column dropped (0003).
"""

from __future__ import annotations

import os
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connections
from django.db.migrations.loader import MigrationLoader

from dbtools.backup import backup_database
from dbtools.exceptions import RestoreError
from dbtools.restore import prepare_restore, restore_database
from dbtools.restore.replay import replay_restore
from dbtools.restore.scratch import SCRATCH_PREFIX
from tests.conftest import backends, run_manage
from tests.edgecases import models as e

SCHEDULES = {"weekly box": "every 2 weeks", "daily box": "daily", "odd box": "every 3 days"}


def plan_model(alias: str, migration: str):
    state = MigrationLoader(connections[alias]).project_state(("replaylab", migration))
    return state.apps.get_model("replaylab", "Plan")


def rows(alias: str) -> list[tuple]:
    Plan = plan_model(alias, "0003_remove_delivery_schedule")
    return list(
        Plan.objects.using(alias)
        .order_by("pk")
        .values_list("pk", "name", "billing_interval", "billing_interval_count")
    )


@pytest.fixture
def backup_before_the_data_migration(alias, backup_dir):
    """The rows at 0001, backed up; then migrated by Django as a project would be.
    Yields the backup and the rows as Django's migrate made them."""
    call_command("migrate", "replaylab", "0001", database=alias, verbosity=0)
    Plan = plan_model(alias, "0001_initial")
    for name, schedule in SCHEDULES.items():
        Plan.objects.using(alias).create(name=name, delivery_schedule=schedule)
    e.Tag.objects.using(alias).create(name="not in the backup")
    backup = backup_database(using=alias, only=["replaylab"]).path
    call_command("migrate", "replaylab", database=alias, verbosity=0)
    migrated = rows(alias)
    yield backup, migrated
    with connections[alias].cursor() as cursor:
        cursor.execute("DELETE FROM replaylab_plan")


def test_the_data_migration_is_what_the_rows_go_through(alias, backup_before_the_data_migration):
    _backup, migrated = backup_before_the_data_migration
    assert [r[2:] for r in migrated] == [("WEEK", 2), ("DAY", 1), ("DAY", 3)]


@pytest.mark.parametrize("mode", ["merge", "replace"])
def test_replay_restores_what_migrate_made(alias, backup_before_the_data_migration, mode):
    backup, migrated = backup_before_the_data_migration
    Plan = plan_model(alias, "0003_remove_delivery_schedule")
    if mode == "merge":
        Plan.objects.using(alias).all().delete()
    else:
        Plan.objects.using(alias).update(billing_interval="YEAR", billing_interval_count=9)
        Plan.objects.using(alias).create(name="made since")

    result = replay_restore(backup, using=alias, mode=mode)

    assert rows(alias) == migrated
    assert result.path == backup
    assert list(e.Tag.objects.using(alias).values_list("name", flat=True)) == ["not in the backup"]
    assert not own_scratch_databases(alias)


def test_without_replay_the_restore_refuses_and_no_replay_takes_defaults(
    alias, backup_before_the_data_migration
):
    backup, _migrated = backup_before_the_data_migration
    plan_model(alias, "0003_remove_delivery_schedule").objects.using(alias).all().delete()
    with pytest.raises(
        RestoreError,
        match=r"^Migrations applied since the backup was taken can change rows: "
        r"replaylab.0002_billing_interval \(RunPython\)\. .* pass --replay",
    ):
        prepare_restore(backup, using=alias)
    restore_database(prepare_restore(backup, using=alias, no_replay=True), mode="merge")
    # What the issue called silently wrong, now only on request: every plan MONTH/1.
    assert [r[2:] for r in rows(alias)] == [("MONTH", 1)] * 3


def test_replay_from_the_command_says_what_it_does(alias, backup_before_the_data_migration):
    backup, migrated = backup_before_the_data_migration
    plan_model(alias, "0003_remove_delivery_schedule").objects.using(alias).all().delete()
    out = StringIO()
    call_command(
        "restoredb",
        "--database",
        alias,
        "--file",
        str(backup),
        "--replay",
        "--no-input",
        stdout=out,
    )
    text = out.getvalue()
    assert "Replay: the rows are loaded at the backup's schema in a scratch database" in text
    assert (
        text.rstrip()
        .splitlines()[-1]
        .startswith(f"Restored 3 rows into 1 table from {backup.name}"[:20])
    )
    assert rows(alias) == migrated


def scratch_databases(alias: str) -> list[str]:
    connection = connections[alias]
    if connection.vendor == "sqlite":
        return []
    sql = (
        "SELECT datname FROM pg_database WHERE datname LIKE %s"
        if connection.vendor == "postgresql"
        else "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [SCRATCH_PREFIX + "%"])
        return [row[0] for row in cursor.fetchall()]


def own_scratch_databases(alias: str) -> list[str]:
    """Scratch databases this test process made (another run may be using its own)."""
    return [name for name in scratch_databases(alias) if f"_{os.getpid()}_" in name]


@backends("postgresql", "mariadb")
def test_a_scratch_database_left_by_a_killed_replay_is_dropped(
    alias, backup_before_the_data_migration
):
    from dbtools.restore.scratch import host_tag

    backup, migrated = backup_before_the_data_migration
    connection = connections[alias]
    dead = f"{SCRATCH_PREFIX}{host_tag()}_999999999_abcdef"  # no process has that id
    elsewhere = f"{SCRATCH_PREFIX}ffffff_1_abcdef"  # another host's: not ours to drop
    with connection.cursor() as cursor:
        for name in (dead, elsewhere):
            cursor.execute(f"CREATE DATABASE {connection.ops.quote_name(name)}")
    try:
        replay_restore(backup, using=alias, mode="replace")
        left = scratch_databases(alias)  # another test run's own may be there too
        assert dead not in left and elsewhere in left
        assert rows(alias) == migrated
    finally:
        with connection.cursor() as cursor:
            for name in (dead, elsewhere):
                cursor.execute(f"DROP DATABASE IF EXISTS {connection.ops.quote_name(name)}")


def test_replay_through_every_lab_migration_matches_migrate(alias, backup_dir):
    """The lab app's history, backed up at its first migration and replayed at
    its last: a rename, a field added with a one-off default, a field removed,
    a unique constraint, a field made required, a type change, a field added
    with a default and two data migrations, compared with what migrate made."""
    from tests.test_safemigrate import LAST, Lab

    lab = Lab(alias)
    lab.migrate("0001")
    try:
        for i, (code, size) in enumerate([("A", 3), ("B", 0), ("C", 12)]):
            lab.add(name=f"gadget {i}", code=code, size=size, legacy=f"notes {i}")
        backup = backup_database(using=alias, only=["lab"]).path
        lab.migrate(LAST)
        Gadget = lab.model()
        fields = ["pk", "name", "code", "dimension", "weight", "color"]
        migrated = list(Gadget.objects.using(alias).order_by("pk").values_list(*fields))
        assert [row[3] for row in migrated] == ["3", "0", "12"]  # the int became text

        with pytest.raises(RestoreError, match=r"lab\.0008_color"):
            prepare_restore(backup, using=alias)
        Gadget.objects.using(alias).all().delete()
        replay_restore(backup, using=alias, mode="merge")
        assert list(Gadget.objects.using(alias).order_by("pk").values_list(*fields)) == migrated

        Gadget.objects.using(alias).update(color="blue", weight=5)
        replay_restore(backup, using=alias, mode="replace")
        assert list(Gadget.objects.using(alias).order_by("pk").values_list(*fields)) == migrated
    finally:
        with connections[alias].cursor() as cursor:
            cursor.execute("DELETE FROM lab_gadget")
        lab.migrate(LAST)


def test_restoredb_proposes_the_replay_when_asked_interactively(
    alias, backup_before_the_data_migration, backup_dir
):
    backup, migrated = backup_before_the_data_migration
    Plan = plan_model(alias, "0003_remove_delivery_schedule")
    Plan.objects.using(alias).all().delete()
    env = {"DBTOOLS_TESTS_BACKUP_DIR": str(backup_dir)}
    args = ("restoredb", "--database", alias, "--file", str(backup))

    refused = run_manage(*args, env=env, input="n\n")
    assert refused.returncode == 1
    assert "Replay the backup through the migrations instead? [y/N]" in refused.stdout
    assert refused.stderr.strip().endswith("Restore cancelled; nothing was changed.")
    assert not Plan.objects.using(alias).exists()

    accepted = run_manage(*args, env=env, input="y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert rows(alias) == migrated


@backends("postgresql")
def test_no_right_to_create_the_scratch_database_says_how_to_grant_it(
    alias, backup_before_the_data_migration
):
    from django.db.utils import load_backend

    from dbtools.restore.scratch import host_tag

    backup, _migrated = backup_before_the_data_migration
    admin = connections[alias]
    role = f"dbtools_nocreate_{os.getpid()}"
    # A killed run's scratch database that this role may not drop: left alone.
    others = f"{SCRATCH_PREFIX}{host_tag()}_999999998_{os.getpid()}"
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {others}")
        cursor.execute(f"CREATE ROLE {role} LOGIN NOCREATEDB")
        cursor.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    settings = {**admin.settings_dict, "USER": role}
    connections["nocreate"] = load_backend(settings["ENGINE"]).DatabaseWrapper(settings, "nocreate")
    try:
        with pytest.raises(RestoreError) as raised:
            replay_restore(backup, using="nocreate")
        message = str(raised.value)
        assert message.startswith(
            f"Replay needs a scratch database beside {admin.settings_dict['NAME']!r}, and creating "
            f"{SCRATCH_PREFIX}"
        )
        assert (
            f"Grant it (ALTER ROLE {role} CREATEDB;) or restore without --replay. Nothing was changed."
            in message
        )
        assert others in scratch_databases(alias)
    finally:
        connections["nocreate"].close()
        del connections["nocreate"]
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {others}")
            cursor.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
            cursor.execute(f"DROP ROLE {role}")


@backends("postgresql")
@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_postgresql_backup_replays_into_sqlite(alias, backup_dir):
    """The scratch database is the target's kind, whatever the backup's."""
    source, target = alias, "default"
    for db in (source, target):
        call_command("migrate", "replaylab", "0001", database=db, verbosity=0)
    Plan = plan_model(source, "0001_initial")
    for name, schedule in SCHEDULES.items():
        Plan.objects.using(source).create(name=name, delivery_schedule=schedule)
    backup = backup_database(using=source, only=["replaylab"]).path
    try:
        call_command("migrate", "replaylab", database=target, verbosity=0)
        replay_restore(backup, using=target, mode="merge")
        assert [r[1:] for r in rows(target)] == [
            ("weekly box", "WEEK", 2), ("daily box", "DAY", 1), ("odd box", "DAY", 3),
        ]  # fmt: skip
    finally:
        for db in (source, target):
            with connections[db].cursor() as cursor:
                cursor.execute("DELETE FROM replaylab_plan")
            call_command("migrate", "replaylab", database=db, verbosity=0)


# Every change of the reference document's list, backed up at the first migration -------

BOXES = [
    # name, size (an int, made text by 0007), note (NULL made "none" by 0006), nickname, schedule
    ("small", 1, None, "s", "every 2 weeks"),
    ("large", 40, "fragile", "l", "every 3 days"),
    ("odd", 7, None, "o", "whenever"),
]
BOX_FIELDS = [
    "pk",
    "name",
    "size",
    "note",
    "label",
    "featured",
    "color",
    "interval",
    "interval_count",
]


def boxes(alias):
    Box = MigrationLoader(connections[alias]).project_state(("schemalab", "0009_transformation"))
    Box = Box.apps.get_model("schemalab", "Box")
    return Box, list(Box.objects.using(alias).order_by("pk").values_list(*BOX_FIELDS))


@pytest.fixture
def schemalab_backup(alias, backup_dir):
    """Rows at 0001, backed up; then migrated through all nine changes by
    Django's own migrate. Yields the backup and the rows as migrate made them."""
    call_command("migrate", "schemalab", "0001", database=alias, verbosity=0)
    Box = MigrationLoader(connections[alias]).project_state(("schemalab", "0001_initial"))
    Box = Box.apps.get_model("schemalab", "Box")
    for name, size, note, nickname, schedule in BOXES:
        Box.objects.using(alias).create(
            name=name, size=size, note=note, nickname=nickname, schedule=schedule, legacy="old"
        )
    backup = backup_database(using=alias, only=["schemalab"]).path
    call_command("migrate", "schemalab", database=alias, verbosity=0)
    migrated = boxes(alias)[1]
    yield backup, migrated
    with connections[alias].cursor() as cursor:
        cursor.execute("DELETE FROM schemalab_box")


def test_migrate_itself_makes_these_rows(alias, schemalab_backup):
    _backup, migrated = schemalab_backup
    assert [row[1:] for row in migrated] == [
        ("small", "1", "none", "s", False, None, "WEEK", 2),
        ("large", "40", "fragile", "l", False, None, "DAY", 3),
        ("odd", "7", "none", "o", False, None, "MONTH", 1),
    ]


@pytest.mark.parametrize("mode", ["merge", "replace"])
def test_every_change_replayed_matches_migrate(alias, schemalab_backup, mode):
    backup, migrated = schemalab_backup
    Box, _ = boxes(alias)
    if mode == "merge":
        Box.objects.using(alias).all().delete()
    else:
        Box.objects.using(alias).update(note="changed", interval="YEAR", color="red")
    replay_restore(backup, using=alias, mode=mode)
    assert boxes(alias)[1] == migrated


@pytest.mark.parametrize("mode", ["merge", "replace"])
def test_every_change_without_replay_differs_only_where_the_data_migration_would_have_acted(
    alias, schemalab_backup, mode
):
    """Into today's schema (--no-replay): the rename is followed, the int
    converted, the NULL note takes its default, new fields their defaults;
    only the transformation's two fields are not what migrate made."""
    backup, migrated = schemalab_backup
    Box, _ = boxes(alias)
    Box.objects.using(alias).all().delete()
    with pytest.raises(RestoreError, match=r"schemalab\.0009_transformation \(RunPython\)"):
        prepare_restore(backup, using=alias)
    restore_database(prepare_restore(backup, using=alias, no_replay=True), mode=mode)
    restored = boxes(alias)[1]
    assert [row[:-2] for row in restored] == [row[:-2] for row in migrated]
    assert [row[-2:] for row in restored] == [("MONTH", 1)] * 3


@backends("sqlite")
def test_every_change_into_an_empty_database_matches_migrate(alias, schemalab_backup):
    """restoredb into a database with no tables: migrate, then replay."""
    import sqlite3

    backup, migrated = schemalab_backup
    empty = (
        connections[alias].settings_dict["NAME"].replace("test.sqlite3", "empty-schemalab.sqlite3")
    )
    env = {"DBTOOLS_TESTS_USE_TEST_DATABASES": "0", "DBTOOLS_TESTS_SQLITE_NAME": empty}
    try:
        done = run_manage("restoredb", "--file", str(backup), "--no-input", env=env)
        assert done.returncode == 0, done.stderr
        with sqlite3.connect(empty) as db:
            restored = db.execute(
                "SELECT id, name, size, note, label, featured, color, interval, interval_count "
                "FROM schemalab_box ORDER BY id"
            ).fetchall()
        assert [(*row[:5], bool(row[5]), *row[6:]) for row in restored] == migrated
    finally:
        if os.path.exists(empty):
            os.remove(empty)


@backends("sqlite")
def test_a_sqlite_scratch_folder_left_by_a_killed_replay_is_removed(
    alias, backup_before_the_data_migration
):
    import tempfile
    from pathlib import Path

    from dbtools.restore.scratch import SCRATCH_FOLDER_PREFIX

    backup, migrated = backup_before_the_data_migration
    temp = Path(tempfile.gettempdir())
    dead = temp / f"{SCRATCH_FOLDER_PREFIX}999999999-test"  # no process has that id
    alive = temp / f"{SCRATCH_FOLDER_PREFIX}{os.getpid()}-test"  # this one is running
    for folder in (dead, alive):
        folder.mkdir()
        (folder / "scratch.sqlite3").write_bytes(b"rows")
    try:
        replay_restore(backup, using=alias, mode="replace")
        assert not dead.exists() and alive.exists()
        assert rows(alias) == migrated
    finally:
        for folder in (dead, alive):
            if folder.exists():
                (folder / "scratch.sqlite3").unlink()
                folder.rmdir()


# A replay's migrations reach the scratch database only: tests/rawlab's data
# migration writes through `django.db.connection` and `using="default"`.


def notes(alias: str) -> list[tuple]:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT id, text, touched FROM rawlab_note ORDER BY id")
        return [tuple(row) for row in cursor.fetchall()]


def every_alias() -> list[str]:
    from django.conf import settings

    return list(settings.DATABASES)


@pytest.fixture
def rawlab_backup(alias, backup_dir):
    """Two notes backed up at rawlab 0001; the target then migrated to 0002
    with no notes, and given one row of its own; every other test database
    holds a sentinel row a stray write would change."""
    call_command("migrate", "rawlab", "0001", database=alias, verbosity=0)
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "INSERT INTO rawlab_note (id, text, touched) VALUES (1, 'a', 0), (2, 'b', 0)"
        )
    backup = backup_database(using=alias, only=["rawlab"]).path
    for name in every_alias():
        with connections[name].cursor() as cursor:
            cursor.execute("DELETE FROM rawlab_note")
    call_command("migrate", "rawlab", database=alias, verbosity=0)
    for name in every_alias():
        with connections[name].cursor() as cursor:
            row = "(7, 'made since the backup', 0)" if name == alias else "(9, 'sentinel', 0)"
            cursor.execute(f"INSERT INTO rawlab_note (id, text, touched) VALUES {row}")
    yield backup
    for name in every_alias():
        with connections[name].cursor() as cursor:
            cursor.execute("DELETE FROM rawlab_note")


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_dry_run_replay_and_a_drill_write_nothing_outside_the_scratch(alias, rawlab_backup):
    from dbtools.restore.drill import drill

    before = {name: notes(name) for name in every_alias()}

    result = replay_restore(rawlab_backup, using=alias, mode="merge", dry_run=True)
    assert next(t for t in result.tables if t.label == "rawlab.Note").inserted == 2
    assert {name: notes(name) for name in every_alias()} == before

    checked = drill(rawlab_backup, using=alias)
    assert checked.ok and checked.replayed, checked.error
    assert {name: notes(name) for name in every_alias()} == before


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_replayed_row_gets_the_change_of_a_migration_that_names_no_database(alias, rawlab_backup):
    before = {name: notes(name) for name in every_alias()}

    replay_restore(rawlab_backup, using=alias, mode="replace")

    assert notes(alias) == [(1, "a!", 1), (2, "b!", 1)]
    assert {name: notes(name) for name in every_alias() if name != alias} == {
        name: rows for name, rows in before.items() if name != alias
    }
    assert not own_scratch_databases(alias)


def natural_permissions(alias: str) -> set[tuple[str, str, str]]:
    from django.contrib.auth.models import Permission

    return set(
        Permission.objects.using(alias).values_list(
            "content_type__app_label", "content_type__model", "codename"
        )
    )


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_replay_creates_the_content_types_migrate_would(alias, rawlab_backup):
    """A --replace --replay of a backup taken before rawlab.Label existed keeps
    Label's content type and permissions, as `migrate` would have made them."""
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.db_manager(alias).filter(app_label="rawlab", model="label").delete()
    ContentType.objects.clear_cache()
    older = backup_database(using=alias, only=["rawlab", "contenttypes", "auth"]).path
    call_command("migrate", "rawlab", database=alias, verbosity=0)  # post_migrate makes them again
    expected = natural_permissions(alias)
    assert {p for p in expected if p[:2] == ("rawlab", "label")} == {
        ("rawlab", "label", f"{action}_label") for action in ("add", "change", "delete", "view")
    }

    replay_restore(older, using=alias, mode="replace")

    assert natural_permissions(alias) == expected
    assert ContentType.objects.db_manager(alias).filter(app_label="rawlab", model="label").exists()


@backends("sqlite")
def test_into_an_empty_database_the_backup_wins_over_the_migrations_initial_rows(
    alias, backup_dir, tmp_path
):
    """rawlab 0002 makes a 'welcome' label, as a CMS makes its welcome page;
    the backup renamed it and added one. Restored into an empty database, the
    result is the backup's rows, not the migration's."""
    import sqlite3

    with connections[alias].cursor() as cursor:
        cursor.execute("DELETE FROM rawlab_label")
        cursor.execute("INSERT INTO rawlab_label (id, name) VALUES (1, 'home'), (2, 'about')")
    backup = backup_database(using=alias, only=["rawlab"]).path
    empty = str(tmp_path / "empty.sqlite3")
    env = {"DBTOOLS_TESTS_USE_TEST_DATABASES": "0", "DBTOOLS_TESTS_SQLITE_NAME": empty}

    done = run_manage("restoredb", "--file", str(backup), "--no-input", env=env)

    assert done.returncode == 0, done.stderr
    assert "Mode:   REPLACE: empty the tables the backup holds" in done.stdout
    with sqlite3.connect(empty) as db:
        assert db.execute("SELECT id, name FROM rawlab_label ORDER BY id").fetchall() == [
            (1, "home"),
            (2, "about"),
        ]


@backends("sqlite")
def test_a_failed_replay_into_an_empty_database_leaves_it_empty(alias, backup_dir, tmp_path):
    import sqlite3

    backup = backup_database(using=alias, only=["rawlab"]).path
    text = backup.read_bytes().replace(b'"0002_touch_notes"', b'"0099_gone"', 1)
    backup.write_bytes(text)
    empty = str(tmp_path / "empty.sqlite3")
    env = {"DBTOOLS_TESTS_USE_TEST_DATABASES": "0", "DBTOOLS_TESTS_SQLITE_NAME": empty}

    done = run_manage("restoredb", "--file", str(backup), "--no-input", env=env)

    assert done.returncode == 1
    assert "this project no longer has: rawlab.0099_gone" in done.stderr
    assert "Nothing was changed." in done.stderr
    with sqlite3.connect(empty) as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_a_run_sql_that_does_nothing_forwards_is_no_data_migration():
    from types import SimpleNamespace

    from django.db.migrations import RunPython, RunSQL

    from dbtools.restore.since_backup import data_migrations

    nodes = {
        ("app", "0001"): SimpleNamespace(operations=[RunSQL(RunSQL.noop, "DROP INDEX x")]),
        ("app", "0002"): SimpleNamespace(operations=[RunSQL([], ["DROP INDEX y"])]),
        ("app", "0003"): SimpleNamespace(operations=[RunSQL("UPDATE t SET a = 1")]),
        ("app", "0004"): SimpleNamespace(operations=[RunPython(RunPython.noop, print)]),
    }
    loader = SimpleNamespace(graph=SimpleNamespace(nodes=nodes))
    assert data_migrations(loader, list(nodes)) == ["app.0003 (RunSQL)"]


def test_any_command_removes_a_killed_runs_private_folders_and_says_so(backup_dir):
    import tempfile
    from pathlib import Path

    temp = Path(tempfile.gettempdir())
    dead = temp / "dbtools-replay-999999999-abc"  # no process has that id
    alive = temp / f"dbtools-drill-{os.getpid()}-abc"  # this one is running
    for folder in (dead, alive):
        folder.mkdir()
        (folder / "replayed.json").write_bytes(b'{"plaintext": "rows"}')
    try:
        err = StringIO()
        call_command("listbackups", stdout=StringIO(), stderr=err)
        assert not dead.exists() and alive.exists()
        assert err.getvalue().startswith(
            "Removed 1 temporary folder(s) left by a dbtools run that was killed (they may have "
            "held the plaintext rows of a backup): dbtools-replay-999999999-abc.\n"
        )
    finally:
        for folder in (dead, alive):
            if folder.exists():
                (folder / "replayed.json").unlink()
                folder.rmdir()


def labels_backed_up_then_set(alias: str, rows: str):
    """A backup holding the labels home and about; the target's label table
    then holds only `rows` (SQL VALUES), as the tests below set it."""
    with connections[alias].cursor() as cursor:
        cursor.execute("DELETE FROM rawlab_label")
        cursor.execute("INSERT INTO rawlab_label (id, name) VALUES (1, 'home'), (2, 'about')")
    backup = backup_database(using=alias, only=["rawlab"]).path
    with connections[alias].cursor() as cursor:
        cursor.execute("DELETE FROM rawlab_label")
        cursor.execute(f"INSERT INTO rawlab_label (id, name) VALUES {rows}")
    return backup


@pytest.mark.django_db(transaction=True, databases="__all__")
@pytest.mark.parametrize("touched", [False, True])
def test_a_merge_replay_gives_the_backup_the_tables_that_hold_only_the_migrations_rows(
    alias, rawlab_backup, touched
):
    """rawlab 0002 makes a 'welcome' label. In a database where that is all the
    table holds, a merge replay of a backup that renamed it gives the backup's
    labels; where the user changed the table since, a merge leaves it alone."""
    newer = labels_backed_up_then_set(alias, "(1, 'welcome')")
    with connections[alias].cursor() as cursor:
        if touched:
            cursor.execute("INSERT INTO rawlab_label (id, name) VALUES (5, 'a user''s')")
    before_notes = notes(alias)

    result = replay_restore(newer, using=alias, mode="merge")

    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT id, name FROM rawlab_label ORDER BY id")
        labels = [tuple(row) for row in cursor.fetchall()]
    receipt = next(t for t in result.tables if t.label == "rawlab.Label")
    if touched:
        assert labels == [(1, "welcome"), (2, "about"), (5, "a user's")]
        assert receipt.note == ""
    else:
        assert labels == [(1, "home"), (2, "about")]
        assert receipt.note == "held only the migrations' own rows: given the backup's"
    assert notes(alias) == before_notes  # the notes table holds the user's row: merged
    assert not own_scratch_databases(alias)


@backends("sqlite")
@pytest.mark.parametrize("mode", ["merge", "replace"])
def test_a_table_a_trigger_fills_comes_back_as_the_backup_holds_it(alias, backup_dir, mode):
    """rawlab.EntryIndex is filled by a trigger on rawlab.Entry (SQLite), as
    Wagtail's search index is; the backup holds both tables' rows."""
    from tests.rawlab.models import Entry, EntryIndex

    for title in ("one", "two", "three"):
        Entry.objects.using(alias).create(title=title)
    EntryIndex.objects.using(alias).filter(title="two").update(title="edited by hand")
    expected = list(EntryIndex.objects.using(alias).order_by("pk").values_list("pk", "title"))
    backup = backup_database(using=alias, only=["rawlab"]).path
    if mode == "merge":
        EntryIndex.objects.using(alias).all().delete()
        Entry.objects.using(alias).all().delete()

    restore_database(prepare_restore(backup, using=alias), mode=mode)

    assert (
        list(EntryIndex.objects.using(alias).order_by("pk").values_list("pk", "title")) == expected
    )
    Entry.objects.using(alias).create(title="four")  # the trigger is back
    assert EntryIndex.objects.using(alias).filter(title="four").exists()


# Review: what a merge replay's comparison with a fresh migrate may take for the
# migrations' own rows, and what a replay leaves of the caller's state.


def labels(alias: str) -> list[tuple]:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT id, name FROM rawlab_label ORDER BY id")
        return [tuple(row) for row in cursor.fetchall()]


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_row_edited_after_the_comparison_is_not_taken_for_the_migrations(
    alias, rawlab_backup, monkeypatch
):
    """The welcome label is edited (the row count stays 1) after the replay
    compared the table with a fresh migrate and before its transaction: the
    user's edit is not deleted in favour of the backup's row."""
    import dbtools.restore.replay as replay

    newer = labels_backed_up_then_set(alias, "(1, 'welcome')")
    compared = replay.tables_as_migrate_makes_them

    def then_edited(*args, **kwargs):
        found = compared(*args, **kwargs)
        assert "rawlab.Label" in found  # the comparison did take it for the migrations'
        with connections[alias].cursor() as cursor:
            cursor.execute("UPDATE rawlab_label SET name = 'welcome, edited' WHERE id = 1")
        return found

    monkeypatch.setattr(replay, "tables_as_migrate_makes_them", then_edited)

    with pytest.raises(RestoreError) as raised:
        replay_restore(newer, using=alias, mode="merge")

    assert str(raised.value) == (
        "rawlab.Label changed while this restore compared it with what the migrations make. "
        "Nothing was changed: the restore was rolled back. Run it again."
    )
    assert labels(alias) == [(1, "welcome, edited")]


def test_a_default_that_is_the_same_each_time_is_compared():
    """A JSONField(default=dict) holds what the user put there: a row whose
    only change is in it is no row of the migrations'."""
    import uuid

    from django.db import models
    from django.test.utils import isolate_apps

    from dbtools.restore.replay import generated_columns

    with isolate_apps("tests.rawlab"):

        class Preferences(models.Model):
            config = models.JSONField(default=dict)
            tags = models.JSONField(default=list)
            key = models.UUIDField(default=uuid.uuid4)
            stamped = models.DateTimeField(auto_now=True)

            class Meta:
                app_label = "rawlab"

    assert generated_columns(Preferences) == {"key", "stamped"}


@pytest.mark.django_db(transaction=True, databases="__all__")
@pytest.mark.parametrize("failure", [RestoreError, KeyboardInterrupt])
def test_a_replay_that_fails_mid_way_gives_back_every_connection_and_router(
    alias, rawlab_backup, monkeypatch, failure
):
    from django.db import router

    import dbtools.restore.replay as replay

    before = {name: connections[name] for name in every_alias()}
    routers = list(router.routers)
    migrate = replay.migrate

    def fails_after_the_first(scratch, targets, what, signals=False):
        assert all(connections[name].alias == scratch.alias for name in every_alias())
        if signals:
            raise failure("stop")
        migrate(scratch, targets, what, signals)

    monkeypatch.setattr(replay, "migrate", fails_after_the_first)

    with pytest.raises(failure):
        replay_restore(rawlab_backup, using=alias, mode="merge")

    assert {name: connections[name] for name in every_alias()} == before
    assert router.routers == routers
    assert not own_scratch_databases(alias)


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_replay_inside_the_callers_transaction_leaves_it_to_the_caller(alias, rawlab_backup):
    """Called from Python inside transaction.atomic() on the target: on SQLite
    the replay stays inside it; on PostgreSQL and MariaDB, where the scratch
    database cannot be made inside a transaction (MariaDB would commit it),
    the replay refuses, saying why. The caller's rollback undoes its own row."""
    from django.db import transaction

    class Undo(Exception):
        pass

    with pytest.raises((Undo, RestoreError)) as raised, transaction.atomic(using=alias):
        with connections[alias].cursor() as cursor:
            cursor.execute("INSERT INTO rawlab_note (id, text, touched) VALUES (40, 'mine', 0)")
        replay_restore(rawlab_backup, using=alias, mode="merge")
        raise Undo
    if connections[alias].vendor == "sqlite":
        assert raised.type is Undo
    else:
        name = connections[alias].settings_dict["NAME"]
        assert str(raised.value) == (
            f"A replay or drill makes a scratch database beside {name!r}, which cannot be done "
            f"inside the open transaction on it (transaction.atomic()); call it outside one. "
            f"Nothing was changed."
        )
    assert 40 not in [row[0] for row in notes(alias)]
    assert not own_scratch_databases(alias)


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_table_with_as_many_rows_as_migrate_makes_but_other_values_is_merged(
    alias, rawlab_backup
):
    """The user renamed the welcome label: the table holds one row, as a fresh
    migrate makes, but not the migration's row. A merge leaves it alone."""
    newer = labels_backed_up_then_set(alias, "(1, 'renamed by the user')")

    result = replay_restore(newer, using=alias, mode="merge")

    assert labels(alias) == [(1, "renamed by the user"), (2, "about")]
    assert next(t for t in result.tables if t.label == "rawlab.Label").note == ""


@backends("sqlite")
@pytest.mark.parametrize("failure", ["KeyboardInterrupt", "DatabaseError('disk full')"])
def test_a_replay_cut_short_after_migrating_the_empty_database_says_so(
    alias, backup_dir, tmp_path, failure
):
    """restoredb --replay into an empty database: the interrupt or error comes
    once the database was migrated. What the command prints must not say the
    database is unchanged."""
    import sqlite3
    import subprocess
    import sys

    from tests.conftest import ROOT, manage_env

    backup = backup_database(using=alias, only=["rawlab"]).path
    empty = str(tmp_path / "empty.sqlite3")
    script = (
        "import django; django.setup()\n"
        "from django.db import DatabaseError\n"
        "from django.core.management import ManagementUtility\n"
        "from dbtools.restore import replay\n"
        "migrate = replay.migrate_empty_target\n"
        "def cut_short(using):\n"
        "    migrate(using)\n"
        f"    raise {failure}\n"
        "replay.migrate_empty_target = cut_short\n"
        "ManagementUtility(['manage.py', 'restoredb', '--file', "
        f"{str(backup)!r}, '--replay', '--no-input', '--skip-checks']).execute()\n"
    )
    env = {"DBTOOLS_TESTS_USE_TEST_DATABASES": "0", "DBTOOLS_TESTS_SQLITE_NAME": empty}

    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=manage_env(env),
        capture_output=True,
        text=True,
        timeout=120,
    )

    with sqlite3.connect(empty) as db:
        assert db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0  # migrated
    assert "unchanged" not in done.stderr, done.stderr
    assert (
        "The database had no tables and was migrated (`manage.py migrate`) before this "
        "restore" in done.stderr
    ), done.stderr


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_another_thread_keeps_its_databases_while_a_replay_runs(alias, rawlab_backup, monkeypatch):
    """A replay or drill called from Python in a process with other threads
    (a web server, a worker): those threads' queries still reach their own
    database, not the replay's scratch alias, which exists in the replay's
    thread only."""
    import threading

    import dbtools.restore.replay as replay
    from tests.rawlab.models import Note

    migrate = replay.migrate
    seen: list[object] = []

    def with_another_thread(*args, **kwargs):
        def query() -> None:
            try:
                seen.append(Note.objects.count())
            except Exception as exc:  # what that thread's request would get
                seen.append(exc)
            finally:
                connections.close_all()

        thread = threading.Thread(target=query)
        thread.start()
        thread.join()
        migrate(*args, **kwargs)

    monkeypatch.setattr(replay, "migrate", with_another_thread)

    replay_restore(rawlab_backup, using=alias, mode="merge", dry_run=True)

    assert seen and all(isinstance(count, int) for count in seen), seen
