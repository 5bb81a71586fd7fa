"""safemigrate: plan, risks, backup, migrate, restore or roll back, on every backend.

The lab app's migrations hold one of each risky operation; each test first
moves lab to the state it needs, with rows made through that state's models.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import threading
import time
from io import StringIO

import jsonschema
import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.db.models.signals import post_migrate, pre_migrate
from django.test import override_settings

from dbtools.backup import applied_migrations, backup_database
from dbtools.checks import check_safemigrate_name_clash
from dbtools.exceptions import MigrationError, RestoreError
from dbtools.migrate.flow import RESTORE_HELP, Exit, Options, safe_migrate
from dbtools.migrate.leftovers import find_leftovers
from dbtools.migrate.lock import migration_lock
from dbtools.migrate.plan import plan_migrations
from dbtools.migrate.rollback import RollbackResult, compare_schema, rollback
from dbtools.migrate.schema import compare, read_schema
from dbtools.restore import prepare_restore, restore_database
from dbtools.storage.catalog import TIMESTAMPED
from tests.conftest import ROOT, backends, free_port, manage_command, manage_env, run_manage
from tests.helpers import comparable_tables, database_contents, read_backup, rewrite_backup

LAST = "0009_irreversible"


class Lab:
    def __init__(self, alias: str) -> None:
        self.alias = alias

    def migrate(self, name: str) -> None:
        if ("lab", LAST) in MigrationLoader(connections[self.alias]).applied_migrations:
            # 0009 has no reverse; it changes no schema, so it can be faked away.
            call_command("migrate", "lab", "0008", fake=True, database=self.alias, verbosity=0)
        call_command("migrate", "lab", name, database=self.alias, verbosity=0)

    def model(self):
        loader = MigrationLoader(connections[self.alias])
        node = max(key for key in loader.applied_migrations if key[0] == "lab")
        return loader.project_state(node).apps.get_model("lab", "Gadget")

    def add(self, **fields) -> None:
        self.model().objects.using(self.alias).create(**fields)

    def columns(self) -> set[str]:
        connection = connections[self.alias]
        with connection.cursor() as cursor:
            return {
                c.name for c in connection.introspection.get_table_description(cursor, "lab_gadget")
            }

    def applied(self) -> list[str]:
        return applied_migrations(connections[self.alias]).get("lab", [])


@pytest.fixture
def lab(alias):
    lab = Lab(alias)
    yield lab
    with connections[alias].cursor() as cursor:
        cursor.execute("DELETE FROM lab_gadget")
    lab.migrate(LAST)


def safemigrate(alias: str, *args: str) -> tuple[str, str, int]:
    out, err = StringIO(), StringIO()
    try:
        call_command(
            "safemigrate", *args, "--database", alias, "--no-input", stdout=out, stderr=err
        )
    except CommandError as exc:
        err.write(str(exc))
        return out.getvalue(), err.getvalue(), exc.returncode
    return out.getvalue(), err.getvalue(), 0


def backups_in(folder) -> list[str]:
    return (
        sorted(p.name for p in folder.iterdir() if "db-backup" in p.name) if folder.exists() else []
    )


def test_nothing_pending_says_so_and_backs_up_nothing(alias, backup_dir):
    out, _err, code = safemigrate(alias)
    assert (out, code) == ("No migrations to apply; nothing was backed up.\n", 0)
    assert backups_in(backup_dir) == []


def test_clean_migration_without_restore(alias, lab, backup_dir):
    lab.migrate("0001")
    lab.add(name="a", code="A", size=3)
    out, err, code = safemigrate(alias, "lab", "0002")
    assert code == 0, err
    assert "  Apply lab.0002_rename_size\n    - Rename field size on gadget to dimension\n" in out
    assert "[INFO] DBT109 lab.0002_rename_size" in out and "restoredb maps the old name" in out
    assert "Migrated: lab.0002_rename_size." in out
    assert "Restored" not in out
    (backup,) = [name for name in backups_in(backup_dir) if "latest" not in name]
    assert backup.startswith("db-backup-pre-migrate-")
    assert lab.applied()[-1] == "0002_rename_size"


def test_clean_migration_with_restore_follows_the_rename(alias, lab, backup_dir):
    lab.migrate("0001")
    lab.add(name="a", code="A", size=3)
    out, err, code = safemigrate(alias, "lab", "0002", "--restore", "always")
    assert code == 0, err
    assert re.search(r"Restored 0 rows \(\d+ already present\)\.", out)
    # Rows that exist only in the backup come back, under the renamed field.
    with connections[alias].cursor() as cursor:
        cursor.execute("DELETE FROM lab_gadget")
    restore_database(prepare_restore(None, using=alias, only=["lab"]))
    assert list(lab.model().objects.using(alias).values_list("name", "dimension")) == [("a", 3)]


def test_every_risk_is_found_and_explained(alias, lab, backup_dir):
    lab.migrate("0001")
    lab.add(name="dup", code=None, size=1, legacy="old notes")
    lab.add(name="dup", code="B", size=2)
    out, err, code = safemigrate(alias, "lab", "--plan")
    assert code == 0, err
    expected = [
        "[INFO] DBT109 lab.0002_rename_size: Rename field size on gadget to dimension",
        "[HIGH] DBT102 lab.0003_add_weight: Add field weight to gadget",
        "gadget.weight is required with no default once migrated (the one-off default only fills today's 2 rows)",
        "[HIGH] DBT104 lab.0004_remove_legacy: Remove field legacy from gadget",
        "The column gadget.legacy and its data in 2 rows are dropped.",
        "[HIGH] DBT107 lab.0005_unique_name: Alter field name on gadget",
        "gadget.name must become unique, but the data has duplicates ('dup' x2): the migration will fail.",
        "[HIGH] DBT106 lab.0006_code_required: Alter field code on gadget",
        "gadget.code becomes required, but 1 rows hold NULL and the migration fills nothing in: it will fail.",
        "[WARNING] DBT108 lab.0007_dimension_text: Alter field dimension on gadget",
        "gadget.dimension changes type from",
        "[WARNING] DBT302 lab.0009_irreversible: Raw Python operation",
        "[WARNING] DBT303 lab.0009_irreversible: Raw SQL operation",
        "touch_nothing has no reverse, so the migration cannot be unapplied: only restoring the backup undoes it.",
        "      Fix: Stop using the field in code and deploy that first;",
    ]
    for line in expected:
        assert line in out
    assert backups_in(backup_dir) == []  # --plan changes nothing


def test_high_risk_asks_before_doing_anything(alias, lab, backup_dir):
    lab.migrate("0003")
    lab.add(name="a", code="A", dimension=1, weight=2, legacy="keep me")
    env = {"DBTOOLS_TESTS_BACKUP_DIR": str(backup_dir)}
    refused = run_manage("safemigrate", "lab", "0004", "--database", alias, env=env, input="n\n")
    assert refused.returncode == 3
    assert "1 high-risk finding(s) above. Back up and migrate anyway? [y/N]" in refused.stdout
    assert refused.stderr.strip() == "CommandError: Cancelled; nothing was changed."
    assert backups_in(backup_dir) == [] and lab.applied()[-1] == "0003_add_weight"

    accepted = run_manage(
        "safemigrate", "lab", "0004", "--database", alias, env=env, input="y\nn\n"
    )
    assert accepted.returncode == 0, accepted.stderr
    assert "Restore data from the backup? [y/N]" in accepted.stdout
    assert "Restored" not in accepted.stdout
    assert lab.applied()[-1] == "0004_remove_legacy" and "legacy" not in lab.columns()


def test_failed_migration_is_rolled_back_to_the_exact_state(alias, lab, backup_dir):
    lab.migrate("0007")
    lab.add(name="explode", code="X", dimension="7", weight=1)
    lab.add(name="calm", code="Y", dimension="8", weight=2)
    before = comparable_tables(database_contents(alias))
    columns_before, applied_before = lab.columns(), lab.applied()

    out, err, code = safemigrate(alias, "lab", "0008", "--rollback-on-failure")

    assert code == 2
    assert "Migration failed: lab.0008_color:" in err and "a gadget is named 'explode'" in err
    assert "Rolled back: the schema of all " in out
    assert "tables matches what it was before safemigrate (compared by introspection)" in out
    assert lab.columns() == columns_before  # on MariaDB the half-applied column is gone too
    assert lab.applied() == applied_before
    assert comparable_tables(database_contents(alias)) == before
    if connections[alias].features.can_rollback_ddl:
        assert (
            "and the data was left as it is: lab.0008_color is atomic and this database rolls back DDL, "
            "so what it did went with its transaction, and the applied migrations are the backup's, so "
            "there was nothing to undo"
        ) in out
    else:
        assert "Undid the half-applied part of lab.0008_color: Add field color to gadget" in out
        assert "and the data is the backup's (" in out


@backends("sqlite", "postgresql")
def test_a_failed_atomic_migration_keeps_what_others_wrote_since_the_backup(alias, lab, backup_dir):
    """The database rolled the failed migration back itself; replacing every
    table with the backup would only throw away other clients' writes."""
    lab.migrate("0007")
    lab.add(name="explode", code="X", dimension="7", weight=1)

    def another_client_writes(sender, using=None, **kwargs):
        if using == alias and sender.label == "lab":
            other = connections.create_connection(alias)
            try:
                with other.cursor() as cursor:
                    cursor.execute(
                        "INSERT INTO lab_gadget (name, code, dimension, weight) "
                        "VALUES ('written meanwhile', 'M', '1', 1)"
                    )
            finally:
                other.close()

    pre_migrate.connect(another_client_writes)
    try:
        out, err, code = safemigrate(alias, "lab", "0008", "--rollback-on-failure")
    finally:
        pre_migrate.disconnect(another_client_writes)
    assert code == 2, err
    assert "restoredb --replace --file db-backup-pre-migrate-" in out  # says how, if wanted
    names = set(lab.model().objects.using(alias).values_list("name", flat=True))
    assert names == {"explode", "written meanwhile"}


def test_failed_migration_without_rollback_says_what_to_do(alias, lab, backup_dir):
    lab.migrate("0004")
    lab.add(name="same", code="A", dimension=1, weight=1)
    lab.add(name="same", code="B", dimension=2, weight=2)
    _out, err, code = safemigrate(alias, "lab", "0005", "--accept-risk")
    assert code == 1
    assert "Migration failed: lab.0005_unique_name:" in err
    assert "The migration failed. The database is as migrate left it;" in err
    assert "restoredb --replace --file db-backup-pre-migrate-" in err


def test_rollback_refuses_before_changing_anything_when_a_migration_has_no_reverse(
    alias, lab, backup_dir
):
    lab.migrate("0008")
    lab.add(name="a", code="A", dimension="1", weight=1)
    backup = backup_database(using=alias)
    call_command("migrate", "lab", database=alias, verbosity=0)
    with pytest.raises(
        MigrationError, match=r"^Cannot roll back: these migrations cannot be unapplied: lab.0009"
    ):
        rollback(backup.path, alias, None)
    assert lab.applied()[-1] == LAST


def test_two_runs_at_once_do_not_both_migrate(alias, lab, backup_dir):
    lab.migrate("0001")
    with migration_lock(alias):
        _out, err, code = safemigrate(alias, "lab", "0002")
    assert code == 1
    assert "Another safemigrate is already running on this database" in err
    assert lab.applied()[-1] == "0001_initial"
    assert not [name for name in backups_in(backup_dir) if TIMESTAMPED.match(name)]


def test_unknown_migration_is_a_clear_error(alias, backup_dir):
    _out, err, code = safemigrate(alias, "lab", "0999")
    assert (code, err) == (1, "Cannot find a migration matching '0999' from app 'lab'.")


@override_settings(
    INSTALLED_APPS=[
        "tests.fake_safemigrate",
        "dbtools",
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "shop",
    ]
)
def test_system_check_warns_when_django_safemigrate_is_installed_too():
    (warning,) = check_safemigrate_name_clash()
    assert warning.id == "dbtools.W001"
    assert warning.msg == (
        "Both dbtools and django_safemigrate provide a 'safemigrate' command; django_safemigrate's runs, "
        "because it comes first in INSTALLED_APPS."
    )


@backends("postgresql")
def test_a_postgresql_table_rewrite_is_read_from_the_sql_with_the_catalogue_size(
    alias, lab, backup_dir, monkeypatch
):
    monkeypatch.setattr("dbtools.migrate.checks.context.BIG_TABLE_ROWS", 2)
    lab.migrate("0006")
    for i in range(3):
        lab.add(name=f"g{i}", code="C", dimension=i, weight=i)
    with connections[alias].cursor() as cursor:
        cursor.execute("ANALYZE lab_gadget")
    out, _err, code = safemigrate(alias, "lab", "0007", "--plan")
    assert code == 0
    assert (
        "  [WARNING] DBT205 lab.0007_dimension_text: Alter field dimension on gadget\n"
        "      dimension from integer to varchar(20) rewrites lab_gadget (about 3 (catalogue estimate) "
        "rows) and its indexes under an ACCESS EXCLUSIVE lock (reads and writes wait).\n"
        '      SQL: ALTER TABLE "lab_gadget" ALTER COLUMN "dimension" TYPE varchar(20) USING '
        '"dimension"::varchar(20);\n'
    ) in out


def test_migrating_backwards_says_what_it_unapplied(alias, lab, backup_dir):
    lab.migrate("0002")
    out, err, code = safemigrate(alias, "lab", "0001")
    assert code == 0, err
    assert (
        "  Unapply lab.0002_rename_size\n    - Undo Rename field size on gadget to dimension\n"
        in out
    )
    assert "Migrated: unapplied lab.0002_rename_size." in out
    assert lab.applied()[-1] == "0001_initial"


def test_rollback_leaves_tables_the_backup_excluded(alias, lab, backup_dir, settings):
    """DBTOOLS['EXCLUDE'] (the README's own example: sessions) keeps a table out
    of the pre-migration backup, so the rollback must leave it alone."""
    import datetime

    from django.contrib.sessions.models import Session

    settings.DBTOOLS = {"BACKUP_DIR": str(backup_dir), "EXCLUDE": ["sessions", "edgecases.Tag"]}
    lab.migrate("0007")
    lab.add(name="explode", code="X", dimension="7", weight=1)
    expires = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    Session.objects.using(alias).create(session_key="k" * 32, session_data="x", expire_date=expires)
    from tests.edgecases.models import Tag

    Tag.objects.using(alias).create(name="kept")

    _out, _err, code = safemigrate(alias, "lab", "0008", "--rollback-on-failure")

    assert code == 2
    assert list(Session.objects.using(alias).values_list("session_key", flat=True)) == ["k" * 32]
    assert list(Tag.objects.using(alias).values_list("name", flat=True)) == ["kept"]


@backends("mariadb")
def test_lock_on_one_database_does_not_block_another_on_the_same_server(alias, lab, backup_dir):
    """GET_LOCK names are server-wide: two projects on one MariaDB server must
    not wait for each other."""
    other = connections.create_connection(alias)
    other.settings_dict = {**other.settings_dict, "NAME": "another_project"}
    from dbtools.migrate.lock import server_lock_name

    assert server_lock_name(other) != server_lock_name(connections[alias])
    holder = connections.create_connection(alias)
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, 0)", [server_lock_name(other)])
            assert cursor.fetchone() == (1,)
        lab.migrate("0001")
        _out, err, code = safemigrate(alias, "lab", "0002")
        assert code == 0, err
    finally:
        holder.close()


@pytest.fixture
def rollbacklab(alias):
    call_command("migrate", "rollbacklab", "0001", database=alias, verbosity=0)
    yield apps_at(alias, "0001_initial").get_model("rollbacklab", "Widget")
    with connections[alias].cursor() as cursor:
        cursor.execute("DELETE FROM rollbacklab_widget")
    call_command("migrate", "rollbacklab", database=alias, verbosity=0)


def apps_at(alias, name):
    return MigrationLoader(connections[alias]).project_state(("rollbacklab", name)).apps


def test_a_half_applied_migration_is_undone_and_the_schema_proven_as_it_was(
    alias, rollbacklab, backup_dir
):
    """atomic = False: the index, the narrowed column and a raw index stay behind
    when the last step fails; the rollback puts each back and then compares."""
    rollbacklab.objects.using(alias).create(name="explode", size="123")
    schema_before = read_schema(connections[alias])

    out, err, code = safemigrate(alias, "rollbacklab", "0002", "--rollback-on-failure")

    assert code == 2, err
    assert (
        "Undid the half-applied part of rollbacklab.0002_half_applied: "
        "Alter field size on widget; Create index rollbacklab_name_idx on field(s) name of model widget"
    ) in out
    if connections[alias].vendor != "sqlite":  # SQLite's table rebuild for AlterField drops it
        assert (
            "Dropped index rollbacklab_widget.rollbacklab_raw_idx, which the failed migration left behind."
            in out
        )
    assert "tables matches what it was before safemigrate (compared by introspection)" in out
    assert compare(schema_before, read_schema(connections[alias])) == []
    assert list(rollbacklab.objects.using(alias).values_list("name", "size")) == [
        ("explode", "123")
    ]


def test_a_rollback_that_cannot_put_the_schema_back_says_what_differs(
    alias, rollbacklab, backup_dir
):
    rollbacklab.objects.using(alias).create(name="leave-a-column", size="1")

    out, err, code = safemigrate(alias, "rollbacklab", "0002", "--rollback-on-failure")

    assert code == 4
    assert "as they were" not in out + err and "matches what it was" not in out + err
    assert "but the schema is not as it was before safemigrate:\n" in err
    assert "  - rollbacklab_leftover: the table was not there before\n" in err
    assert err.rstrip().endswith(
        "Put these back by hand (`manage.py sqlmigrate APP MIGRATION --backwards` shows the SQL that "
        "reverses a migration) before migrating again: a re-run of the migration would fail on them."
    )
    with connections[alias].cursor() as cursor:
        cursor.execute("DROP TABLE rollbacklab_leftover")


def kill_during_extras(alias, backup_dir, tmp_path) -> None:
    """safemigrate rollbacklab 0003, SIGKILLed while 0003 runs, after its two AddFields."""
    point = tmp_path / "killed-here"
    env = {"DBTOOLS_TESTS_BACKUP_DIR": str(backup_dir), "DBTOOLS_TESTS_KILL_POINT": str(point)}
    process = subprocess.Popen(
        manage_command("safemigrate", "rollbacklab", "0003", "--database", alias, "--no-input"),
        cwd=ROOT, env=manage_env(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not point.exists():
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "safemigrate never reached the kill point"
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()
        process.stderr.close()


def widget_columns(alias) -> set[str]:
    connection = connections[alias]
    with connection.cursor() as cursor:
        return {
            c.name
            for c in connection.introspection.get_table_description(cursor, "rollbacklab_widget")
        }


def drop_leftover_extras(alias) -> None:
    """What a failed assertion left: the columns of an unrecorded 0003."""
    recorded = MigrationRecorder(connections[alias]).applied_migrations()
    if ("rollbacklab", "0003_extras") in recorded:
        return
    with connections[alias].cursor() as cursor:
        for column in {"extra", "extra2"} & widget_columns(alias):
            cursor.execute(f"ALTER TABLE rollbacklab_widget DROP COLUMN {column}")


LEFTOVERS = (
    "Left by an earlier run: the database already has these changes of a migration that is not "
    "recorded as applied, as a run killed (or failed, not rolled back) part-way through it leaves "
    "them where DDL is not transactional. They are not part of the schema the recorded migrations "
    "make; migrating fails on them, and a rollback undoes them:\n"
    "  - column rollbacklab_widget.extra: Add field extra to widget (rollbacklab.0003_extras)\n"
    "  - column rollbacklab_widget.extra2: Add field extra2 to widget (rollbacklab.0003_extras)\n"
)


def test_after_a_killed_run_the_leftovers_are_named_and_the_rollback_removes_them(
    alias, rollbacklab, backup_dir, tmp_path, request
):
    """MariaDB cannot roll back DDL: a run killed inside 0003 leaves its columns
    and 0003 unrecorded. The next run must call them leftovers, not part of the
    schema "as it was", and never advise putting them back. PostgreSQL and
    SQLite take them back with the killed transaction: nothing to report."""
    call_command("migrate", "rollbacklab", "0002", database=alias, verbosity=0)
    rollbacklab.objects.using(alias).create(name="a", size="1")
    kill_during_extras(alias, backup_dir, tmp_path)
    request.addfinalizer(lambda: drop_leftover_extras(alias))
    assert MigrationLoader(connections[alias]).applied_migrations.keys() >= {
        ("rollbacklab", "0002_half_applied")
    }
    assert ("rollbacklab", "0003_extras") not in MigrationRecorder(
        connections[alias]
    ).applied_migrations()
    transactional = connections[alias].features.can_rollback_ddl

    out, err, code = safemigrate(alias, "rollbacklab", "0003", "--check", "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    jsonschema.validate(
        report, json.loads((ROOT / "docs/safemigrate-report.schema.json").read_text())
    )
    assert report["leftovers"] == ([] if transactional else [
        {"what": f"column rollbacklab_widget.{name}", "migration": "rollbacklab.0003_extras",
         "operation": f"Add field {name} to widget"}
        for name in ("extra", "extra2")
    ])  # fmt: skip
    out, err, code = safemigrate(alias, "rollbacklab", "0003", "--check")
    assert code == 0, err
    if transactional:
        assert widget_columns(alias) == {"id", "name", "size"}
        assert "Left by an earlier run" not in out + err
        out, err, code = safemigrate(alias, "rollbacklab", "0003")
        assert code == 0, err
        assert "Migrated: rollbacklab.0003_extras." in out
        return
    assert widget_columns(alias) == {"id", "name", "size", "extra", "extra2"}
    assert LEFTOVERS in err

    out, err, code = safemigrate(alias, "rollbacklab", "0003")
    assert code == 1, out + err
    assert LEFTOVERS in err
    assert err.rstrip().endswith(
        "The migration failed. An earlier run left part of rollbacklab.0003_extras in the database "
        "(column rollbacklab_widget.extra, column rollbacklab_widget.extra2), and migrating it fails "
        "on that: `manage.py safemigrate --rollback-on-failure` undoes it (a rollback), or undo it by "
        "hand (`manage.py sqlmigrate rollbacklab 0003_extras --backwards` shows the SQL)."
    )

    out, err, code = safemigrate(alias, "rollbacklab", "0003", "--rollback-on-failure")

    assert code == 2, out + err
    assert LEFTOVERS in err
    assert (
        "Migration failed: rollbacklab.0003_extras: (1060, \"Duplicate column name 'extra'\")"
        in err
    )
    assert (
        "Undid the half-applied part of rollbacklab.0003_extras: "
        "Add field extra2 to widget; Add field extra to widget\n"
    ) in out
    assert (
        "Removed the leftovers of an earlier run: column rollbacklab_widget.extra, "
        "column rollbacklab_widget.extra2 (not part of the schema the recorded migrations make).\n"
    ) in out
    assert re.search(
        r"Rolled back: the schema of all \d+ tables matches the one the recorded migrations make "
        r"\(what it was before safemigrate, less the leftovers above; compared by introspection\)",
        out,
    )
    assert "by hand" not in out + err and "put back" not in (out + err).lower()
    assert widget_columns(alias) == {"id", "name", "size"}
    assert list(rollbacklab.objects.using(alias).values_list("name", "size")) == [("a", "1")]

    # The advice was right: the next run migrates.
    out, err, code = safemigrate(alias, "rollbacklab", "0003")
    assert code == 0, err
    assert "Left by an earlier run" not in out + err
    assert "Migrated: rollbacklab.0003_extras." in out


def test_a_leftover_the_rollback_left_is_named_as_one_and_never_to_be_put_back(
    alias, rollbacklab, request
):
    """A killed run simulated: 0003's second operation applied by hand, not
    recorded. Compared with the schema the recorded migrations make, the
    column is a leftover to remove, not something "gone" to put back."""
    call_command("migrate", "rollbacklab", "0002", database=alias, verbosity=0)
    connection = connections[alias]
    loader = MigrationLoader(connection)
    migration = loader.graph.nodes[("rollbacklab", "0003_extras")]
    before = loader.project_state(("rollbacklab", "0003_extras"), at_end=False)
    after = before.clone()
    migration.operations[1].state_forwards("rollbacklab", after)
    with connection.schema_editor() as editor:
        migration.operations[1].database_forwards("rollbacklab", editor, before, after)
    request.addfinalizer(lambda: drop_leftover_extras(alias))
    recorded = read_schema(connection)

    leftovers = find_leftovers(connection, [(migration, False)])

    assert [str(found) for found in leftovers] == [
        "column rollbacklab_widget.extra2: Add field extra2 to widget (rollbacklab.0003_extras)"
    ]
    result = RollbackResult(unapplied=[], leftovers=leftovers)
    compare_schema(result, connection, recorded)
    assert [str(difference) for difference in result.schema_differences] == [
        "rollbacklab_widget: column rollbacklab_widget.extra2 is still there: a leftover of an "
        "earlier run that was killed (or failed) while applying rollbacklab.0003_extras; it is not "
        "part of the schema the recorded migrations make, so remove it"
    ]
    assert not result.schema_as_it_was

    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE rollbacklab_widget DROP COLUMN extra2")
    result = RollbackResult(unapplied=[], leftovers=leftovers)
    compare_schema(result, connection, recorded)
    assert result.schema_differences == [] and result.schema_as_it_was
    assert find_leftovers(connection, [(migration, False)]) == []


def test_a_table_no_migration_here_makes_is_not_a_leftover(alias):
    """An unmanaged model's table exists because someone else made it; a
    migration that is not applied yet would not make it either."""
    connection = connections[alias]
    migration = MigrationLoader(connection).graph.nodes[("edgecases", "0001_initial")]
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE edgecases_external_report (id integer, title varchar(50))")
    try:
        found = find_leftovers(connection, [(migration, False)])
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE edgecases_external_report")
    tables = {leftover.table for leftover in found}
    # Applied here, so every managed table of the migration shows; not the unmanaged one.
    assert "edgecases_alltypes" in tables and "edgecases_external_report" not in tables


def test_what_a_killed_run_removed_or_renamed_is_expected_back():
    """The schema the recorded migrations make, from the one read before
    migrating: a column an earlier run dropped is wanted back (as the rollback
    made it), one it renamed under its old name; until then each is named."""
    from dbtools.migrate.leftovers import (
        Leftover,
        leftover_still_there,
        still_missing,
        without_leftovers,
    )
    from dbtools.migrate.schema import Column, Constraint, TableSchema

    def column(name):
        return Column(name, "IntegerField", True, None)

    index = Constraint("t_new_idx", "index", ("new",), "")
    before = {"t": TableSchema({"id": column("id"), "new": column("new")}, {"t_new_idx": index})}
    dropped = Leftover("app.0002_x", "Remove field gone from thing", "t", "gone", made=False)
    renamed = Leftover(
        "app.0002_x", "Rename field old on thing to new", "t", "new", old_column="old"
    )
    after = {"t": TableSchema({"id": column("id"), "old": column("old"), "gone": column("gone")}, {
        "t_new_idx": Constraint("t_new_idx", "index", ("old",), "")
    })}  # fmt: skip

    assert compare(without_leftovers(before, [dropped, renamed], after), after) == []
    assert still_missing(dropped, before) and not still_missing(dropped, after)
    assert leftover_still_there(dropped) == (
        "column t.gone is still missing: an earlier run that was killed (or failed) while "
        "applying app.0002_x removed it; the recorded migrations make it, so put it back"
    )
    assert str(renamed) == (
        "column t.new (renamed from old): Rename field old on thing to new (app.0002_x)"
    )


# Restores across migrations (the lab app's history) ------------------------------


def test_a_restore_across_a_data_migration_refuses_unless_told(alias, lab, backup_dir):
    """A RunPython/RunSQL between the backup and now would have changed the
    backup's rows; restoring them into today's schema without it is silently
    wrong, so it needs --no-replay."""
    lab.migrate("0007")
    lab.add(name="a", code="A", dimension="1", weight=1)
    backup = backup_database(using=alias, only=["lab"]).path
    lab.migrate(LAST)
    with connections[alias].cursor() as cursor:
        cursor.execute("DELETE FROM lab_gadget")

    with pytest.raises(RestoreError) as raised:
        prepare_restore(backup, using=alias)
    assert str(raised.value) == (
        "Migrations applied since the backup was taken can change rows: lab.0008_color (RunPython), "
        "lab.0009_irreversible (RunPython, RunSQL). Restored into today's schema, the backup's rows would "
        "not get those changes (a column they fill would take its default instead). Nothing was changed. "
        "To restore exactly, pass --replay: the rows are loaded at the backup's schema in a scratch "
        "database and carried forward by those migrations. To restore into today's schema anyway, pass "
        "--no-replay."
    )
    assert not lab.model().objects.using(alias).exists()

    out = StringIO()
    call_command(
        "restoredb", "--database", alias, "--file", str(backup), "--no-replay", "--no-input",
        stdout=out, stderr=out,
    )  # fmt: skip
    assert "WARNING: --no-replay: the changes of lab.0008_color (RunPython), " in out.getvalue()
    assert "  lab.Gadget: color: not in the backup, takes 'red'" in out.getvalue()
    assert list(lab.model().objects.using(alias).values_list("name", "color")) == [("a", "red")]


def test_a_rename_is_followed_backwards_with_the_warning_first(alias, lab, backup_dir):
    """A backup taken after RenameField(size -> dimension), restored into a
    database before it: dimension goes back into size (it took size's default
    of 0 before, silently)."""
    lab.migrate("0002")
    lab.add(name="a", code="A", dimension=3)
    backup = backup_database(using=alias, only=["lab"]).path
    lab.migrate("0001")
    with connections[alias].cursor() as cursor:
        cursor.execute("DELETE FROM lab_gadget")

    out = StringIO()
    call_command(
        "restoredb", "--database", alias, "--file", str(backup), "--dry-run", "--no-input",
        stdout=out, stderr=out,
    )  # fmt: skip
    text = out.getvalue()
    assert text.index("WARNING: The backup was taken with migrations applied") < text.index(
        "Backup:"
    )
    assert (
        "Changes since the backup, per table:\n  lab.Gadget: dimension -> size (renamed)\n" in text
    )
    restore_database(prepare_restore(backup, using=alias), mode="replace")
    assert list(lab.model().objects.using(alias).values_list("name", "size")) == [("a", 3)]


def test_null_in_a_field_made_required_with_a_default_takes_the_default(alias, lab, backup_dir):
    """What Django's migrate does to existing rows when AlterField makes a field
    NOT NULL with a default: the backup's NULLs take that default."""
    lab.add(name="a", code="A", dimension="1", weight=1, color="blue")
    lab.add(name="b", code="B", dimension="2", weight=2, color="green")
    backup = backup_database(using=alias, only=["lab"]).path

    def nullable_color(meta):
        for column in meta["columns"]:
            if column["name"] == "color":
                column["null"] = True
        return meta

    older = rewrite_backup(
        backup, backup.with_name("older.json"), change_table=nullable_color,
        change_row=lambda label, row: {**row, "color": None} if row["name"] == "a" else row,
    )  # fmt: skip
    plan = prepare_restore(older, using=alias)
    assert [c for m in plan.mappings if m.table for c in m.changes] == [
        "color: NULL takes the default 'red' (required now)"
    ]
    restore_database(plan, mode="replace")
    assert list(lab.model().objects.using(alias).order_by("name").values_list("name", "color")) == [
        ("a", "red"),
        ("b", "green"),
    ]


def test_every_blocker_is_listed_at_once_and_set_supplies_values(alias, lab, backup_dir):
    lab.add(name="a", code="A", dimension="1", weight=1)
    backup = backup_database(using=alias, only=["lab"]).path

    def without(meta):
        meta["columns"] = [c for c in meta["columns"] if c["name"] not in ("code", "weight")]
        return meta

    older = rewrite_backup(
        backup, backup.with_name("older.json"), change_table=without,
        change_row=lambda label, row: {k: v for k, v in row.items() if k not in ("code", "weight")},
    )  # fmt: skip
    with pytest.raises(RestoreError) as raised:
        prepare_restore(older, using=alias)
    assert str(raised.value).split("\n") == [
        "The restore cannot go on (2 problem(s)); nothing was changed.",
        "  - lab.Gadget.code is required now and has no default, but the backup has no values for it (it "
        "was added after the backup was taken). Pass --set lab.Gadget.code=VALUE to give every restored "
        "row that value, or give the field a default (or null=True) in a migration.",
        "  - lab.Gadget.weight is required now and has no default, but the backup has no values for it (it "
        "was added after the backup was taken). Pass --set lab.Gadget.weight=VALUE to give every restored "
        "row that value, or give the field a default (or null=True) in a migration.",
    ]
    with pytest.raises(
        RestoreError, match=r"--set lab.Gadget.weight=heavy: “heavy” value must be an integer"
    ):
        prepare_restore(
            older, using=alias, set_values=["lab.Gadget.code=Z", "lab.Gadget.weight=heavy"]
        )

    with connections[alias].cursor() as cursor:
        cursor.execute("DELETE FROM lab_gadget")
    restore_database(
        prepare_restore(
            older, using=alias, set_values=["lab.Gadget.code=Z", "lab.Gadget.weight=7"]
        ),
        mode="merge",
    )
    assert list(lab.model().objects.using(alias).values_list("name", "code", "weight")) == [
        ("a", "Z", 7)
    ]


@backends("sqlite")  # the target is a SQLite file whatever the source
def test_a_database_with_tables_but_no_migrations_is_refused(alias, backup_dir, tmp_path):
    """Into a database that was never migrated, 'Restored 0 rows' with exit 0
    made a script believe the restore worked."""
    import sqlite3

    Lab(alias).add(name="a", code="A", dimension="1", weight=1)
    backup = backup_database(using=alias, only=["lab"]).path
    target = tmp_path / "never-migrated.sqlite3"
    with sqlite3.connect(target) as db:
        db.execute("CREATE TABLE legacy (id integer)")
    done = run_manage(
        "restoredb", "--file", str(backup), "--no-input",
        env={"DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": f"sqlite:///{target}",
             "DBTOOLS_TESTS_USE_TEST_DATABASES": "0"},
    )  # fmt: skip
    assert done.returncode == 1
    first, second = done.stderr.strip().split("\n")
    assert first.startswith("CommandError: The backup was taken with migrations applied that this")
    assert second.startswith(
        "This database has no migrations applied, so it has none of the backup's tables (1 row in "
    )
    assert "Run `manage.py migrate` first" in second
    with connections[alias].cursor() as cursor:
        cursor.execute("DELETE FROM lab_gadget")


@backends("sqlite")
def test_an_empty_database_is_migrated_then_replayed_into(alias, backup_dir):
    """A database with no tables at all: restoredb makes the schema with the
    project's migrations, then replays the backup into it."""
    import os

    Lab(alias).add(name="a", code="A", dimension="1", weight=1)
    backup = backup_database(using=alias, only=["lab"]).path
    with connections[alias].cursor() as cursor:
        cursor.execute("DELETE FROM lab_gadget")
    empty = connections[alias].settings_dict["NAME"].replace("test.sqlite3", "empty.sqlite3")
    env = {"DBTOOLS_TESTS_USE_TEST_DATABASES": "0", "DBTOOLS_TESTS_SQLITE_NAME": empty}
    try:
        dry = run_manage("restoredb", "--file", str(backup), "--no-input", "--dry-run", env=env)
        assert dry.returncode == 1 and "A dry run changes nothing, so it stops here." in dry.stderr
        assert not os.path.exists(empty) or os.path.getsize(empty) == 0
        done = run_manage("restoredb", "--file", str(backup), "--no-input", env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(
            "This database has no tables: the backup is carried forward through the migrations in "
            "a scratch database, then this database is migrated (`manage.py migrate`) and its "
            "tables that the backup covers are given the backup's rows.\n"
        )
        assert "Restored 1 row into 1 table" in done.stdout
        import sqlite3

        with sqlite3.connect(empty) as db:
            assert db.execute("SELECT name, code FROM lab_gadget").fetchall() == [("a", "A")]
    finally:
        if os.path.exists(empty):
            os.remove(empty)


def test_restore_after_a_data_migration_is_refused_but_the_migration_stands(alias, lab, backup_dir):
    lab.migrate("0007")
    lab.add(name="calm", code="A", dimension="1", weight=1)
    out, err, code = safemigrate(alias, "lab", "0008", "--restore", "always")
    assert code == 0
    assert "Migrated: lab.0008_color." in out
    assert err.startswith(
        "Not restored: Migrations applied since the backup was taken can change rows: "
        "lab.0008_color (RunPython)."
    )
    assert lab.applied()[-1] == "0008_color"


def test_the_first_value_that_will_not_convert_is_a_blocker_before_writing(alias, lab, backup_dir):
    """dimension is text at the last migration and an integer at 0006: the
    pre-flight finds the value that cannot go back, before the transaction."""
    lab.add(name="a", code="A", dimension="12", weight=1)
    lab.add(name="b", code="B", dimension="twelve", weight=1)
    backup = backup_database(using=alias, only=["lab"]).path
    with connections[alias].cursor() as cursor:
        cursor.execute("DELETE FROM lab_gadget")
    lab.migrate("0006")
    b_pk = next(row["id"] for row in read_backup(backup)["lab.Gadget"] if row["name"] == "b")
    with pytest.raises(RestoreError) as raised:
        prepare_restore(backup, using=alias)
    assert str(raised.value).split("\n")[-2:] == [
        "The restore cannot go on (1 problem(s)); nothing was changed.",
        f"  - lab.Gadget.dimension was str in the backup and is int now; the value 'twelve' (row with "
        f"primary key {b_pk}) does not convert (“twelve” value must be an integer.). Restore with "
        f"--replay (the migration's own conversion), or convert the values before restoring.",
    ]
    assert not lab.model().objects.using(alias).exists()


# Edges: input, errors, causes, rollbacks that cannot finish, locks ------------------


def test_a_closed_input_is_refused_before_anything_changes(alias, lab, backup_dir):
    lab.migrate("0001")
    command = ["bash", "-c", 'exec 0<&-; exec "$@"', "bash",
               *manage_command("safemigrate", "lab", "0002", "--database", alias)]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, env=manage_env({"DBTOOLS_TESTS_BACKUP_DIR": str(backup_dir)}),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "CommandError: safemigrate asks before it migrates, but its input is closed; nothing was "
        "changed. Pass --no-input (with --restore and --rollback-on-failure as you want them)."
    )
    assert backups_in(backup_dir) == [] and lab.applied()[-1] == "0001_initial"


def test_no_answer_at_a_prompt_is_the_default_no(alias, lab, backup_dir):
    env = {"DBTOOLS_TESTS_BACKUP_DIR": str(backup_dir)}
    lab.migrate("0003")
    lab.add(name="a", code="A", dimension=1, weight=2, legacy="keep me")
    risky = run_manage("safemigrate", "lab", "0004", "--database", alias, env=env, input="")
    assert risky.returncode == 3
    assert "No answer (the input is closed): taking the default, no.\n" in risky.stderr
    assert risky.stderr.strip().endswith("CommandError: Cancelled; nothing was changed.")
    assert backups_in(backup_dir) == [] and lab.applied()[-1] == "0003_add_weight"

    # 0004, not 0003: a restore after 0003 (a required field the backup lacks)
    # would be refused, so its question is not asked.
    accepted = run_manage("safemigrate", "lab", "0004", "--database", alias, "--accept-risk",
                          env=env, input="")  # fmt: skip
    assert accepted.returncode == 0, accepted.stderr
    assert "Restore data from the backup? [y/N] \n" in accepted.stdout
    assert accepted.stderr == "No answer (the input is closed): taking the default, no.\n"
    assert "Restored" not in accepted.stdout and lab.applied()[-1] == "0004_remove_legacy"


@backends("postgresql")
def test_an_unreachable_database_is_one_line(alias, backup_dir):
    done = run_manage(
        "safemigrate", "--database", alias, "--no-input",
        env={"DBTOOLS_TESTS_POSTGRES_HOST_PORT": f"127.0.0.1:{free_port()}"},
    )  # fmt: skip
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("CommandError: The database reported an error: connection failed:")
    assert line.endswith(
        "Check that the database is reachable and migrated (`manage.py showmigrations`)."
    )


def test_the_migration_error_is_the_cause_so_traceback_shows_it(alias, lab, backup_dir):
    lab.migrate("0007")
    lab.add(name="explode", code="X", dimension="7", weight=1)
    with pytest.raises(CommandError) as raised:
        call_command("safemigrate", "lab", "0008", "--database", alias, "--no-input",
                     "--rollback-on-failure", stdout=StringIO(), stderr=StringIO())  # fmt: skip
    assert raised.value.returncode == 2
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert str(raised.value.__cause__) == "a gadget is named 'explode'"
    shown = run_manage("safemigrate", "lab", "0008", "--database", alias, "--no-input",
                       "--rollback-on-failure", "--traceback",
                       env={"DBTOOLS_TESTS_BACKUP_DIR": str(backup_dir)})  # fmt: skip
    assert "RuntimeError: a gadget is named 'explode'" in shown.stderr
    assert "refuse_explosive_gadgets" in shown.stderr  # where it failed


def test_the_rollback_migrates_back_through_django_migrate_so_signals_fire(alias, lab, backup_dir):
    lab.migrate("0006")
    lab.add(name="explode", code="X", dimension=7, weight=1)
    plans = []

    def record(sender, plan=None, using=None, **kwargs):
        if using == alias and sender.label == "lab":
            plans.append([(m.name, backwards) for m, backwards in plan or []])

    post_migrate.connect(record)
    try:
        out, err, code = safemigrate(alias, "lab", "0008", "--rollback-on-failure")
    finally:
        post_migrate.disconnect(record)
    assert code == 2, err
    assert "Applied before the failure: lab.0007_dimension_text" in err
    assert "Unapplied: lab.0007_dimension_text\n" in out
    assert [("0007_dimension_text", True)] in plans
    assert lab.applied()[-1] == "0006_code_required"


def test_a_rollback_whose_restore_fails_says_what_it_changed(alias, lab, backup_dir, monkeypatch):
    """After migrating back, the restore finds the backup damaged: the message
    must not say 'nothing was changed', because the rollback did change things."""
    import dbtools.migrate.rollback

    lab.migrate("0006")
    lab.add(name="explode", code="X", dimension=7, weight=1)
    real_prepare = dbtools.migrate.rollback.prepare_restore

    def damage_then_prepare(path, **kwargs):
        lines = path.read_bytes().splitlines(keepends=True)
        path.write_bytes(b"".join(lines[:-2]))
        return real_prepare(path, **kwargs)

    monkeypatch.setattr(dbtools.migrate.rollback, "prepare_restore", damage_then_prepare)
    _out, err, code = safemigrate(alias, "lab", "0008", "--rollback-on-failure")
    assert code == 6
    message = err.split("Migration failed", 1)[1]
    assert (
        "The migration failed, and the rollback did not finish: The rollback unapplied "
        "lab.0007_dimension_text. Then restoring the data failed: "
    ) in message
    assert (
        "The schema is at the backup's migrations; the data is as migrating back left it."
        in message
    )
    assert "nothing was changed" not in message.lower()
    assert lab.applied()[-1] == "0006_code_required"


@backends("postgresql")
def test_a_migration_waiting_on_a_lock_fails_fast_and_is_rolled_back(alias, lab, backup_dir):
    """A long read holds ACCESS SHARE; the RenameField needs ACCESS EXCLUSIVE.
    Without a lock_timeout it would wait, and every query on the table behind it."""
    import psycopg

    lab.migrate("0001")
    lab.add(name="a", code="A", size=1)
    settings = connections[alias].settings_dict
    reader = psycopg.connect(host=settings["HOST"], port=settings["PORT"], user=settings["USER"],
                             dbname=settings["NAME"])  # fmt: skip
    reader.execute("SELECT * FROM lab_gadget").fetchall()  # the transaction stays open
    release = threading.Timer(
        30, reader.rollback
    )  # so a broken timeout fails the test, not hangs it
    release.start()
    try:
        started = time.monotonic()
        out, err, code = safemigrate(
            alias, "lab", "0002", "--lock-timeout", "1s", "--rollback-on-failure"
        )
        waited = time.monotonic() - started
    finally:
        release.cancel()
        reader.rollback()
        reader.close()
    assert code == 2, err
    assert "Migration failed: lab.0002_rename_size: canceling statement due to lock timeout" in err
    assert "Rolled back: the schema of all " in out
    assert waited < 25
    assert lab.applied()[-1] == "0001_initial"
    with connections[alias].cursor() as cursor:  # SET LOCAL: nothing left on the session
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone() == ("0",)


class RecordingConsole:
    def __init__(self, answers=()):
        self.lines: list[tuple[str, str]] = []
        self.answers = list(answers)

    def say(self, text, style=""):
        self.lines.append((style, text))

    def ask(self, question):
        self.lines.append(("ask", question))
        return self.answers.pop(0) if self.answers else None


def test_migrate_runs_only_the_plan_that_was_shown(alias, lab, backup_dir):
    """Called as a library: if another process migrates between the plan and
    the run, nothing is migrated."""
    lab.migrate("0001")
    plan = plan_migrations(alias, "lab", "0003")
    call_command("migrate", "lab", "0002", database=alias, verbosity=0)
    console = RecordingConsole()
    options = Options(using=alias, app_label="lab", migration_name="0003", interactive=False,
                      accept_risk=True, verbosity=0)  # fmt: skip
    outcome = safe_migrate(plan, options, console, StringIO(), StringIO())
    assert outcome.exit == Exit.FAILED
    assert outcome.backup is not None
    assert outcome.message == (
        "migrate was about to run lab.0003_add_weight, not the plan shown and checked; the database or "
        "the migration files changed meanwhile. Run safemigrate again. Nothing was migrated; the "
        f"backup {os.path.relpath(outcome.backup.path)} was kept."
    )
    assert lab.applied()[-1] == "0002_rename_size"


def test_the_flow_asks_through_the_console_it_is_given(alias, lab, backup_dir):
    lab.migrate("0003")
    lab.add(name="a", code="A", dimension=1, weight=2, legacy="x")
    plan = plan_migrations(alias, "lab", "0004")
    console = RecordingConsole(answers=[True, False])
    outcome = safe_migrate(plan, Options(using=alias, app_label="lab", migration_name="0004",
                                         verbosity=0), console, StringIO(), StringIO())  # fmt: skip
    assert outcome.exit == Exit.OK
    asked = [text for style, text in console.lines if style == "ask"]
    assert asked == [
        "1 high-risk finding(s) above. Back up and migrate anyway? [y/N] ",
        f"{RESTORE_HELP}\nRestore data from the backup? [y/N] ",
    ]
    assert ("success", "Migrated: lab.0004_remove_legacy.") in console.lines


def test_dbtools_imports_nothing_posix_only():
    """safemigrate's lock once imported fcntl, which fails on Windows."""
    posix_only = {"fcntl", "termios", "pwd", "grp", "resource", "posix"}
    for path in (ROOT / "dbtools").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not posix_only & {name.split(".")[0] for name in names}, path


def test_a_partially_applied_squashed_migration_is_resolved_as_migrate_does(alias, backup_dir):
    """Only the first of the replaced migrations is applied: migrate then runs
    the rest of the replaced ones, and so must safemigrate's plan."""
    recorder = MigrationRecorder(connections[alias])
    call_command("migrate", "squashlab", "zero", database=alias, verbosity=0)
    recorder.record_applied("squashlab", "0001_initial")
    try:
        out, err, code = safemigrate(alias, "squashlab", "0001_squashed", "--plan")
        assert (code, err) == (0, "")
        assert out.startswith("Planned operations:\n  Apply squashlab.0002_second\n")
        out, err, code = safemigrate(alias, "squashlab", "0001_squashed")
        assert code == 0, err
        assert "Migrated: squashlab.0002_second." in out
    finally:
        call_command("migrate", "squashlab", database=alias, verbosity=0)
    assert {"0001_initial", "0002_second"} <= set(
        applied_migrations(connections[alias])["squashlab"]
    )


def test_a_bad_lock_timeout_from_python_is_refused_before_anything(alias, lab, backup_dir):
    lab.migrate("0001")
    plan = plan_migrations(alias, "lab", "0002")
    with pytest.raises(MigrationError) as raised:
        safe_migrate(
            plan, Options(using=alias, lock_timeout="1 hour; DROP TABLE x"), RecordingConsole()
        )
    assert str(raised.value) == (
        "The lock timeout must be a PostgreSQL duration such as '5s', '500ms' or '0' (off), "
        "not '1 hour; DROP TABLE x'."
    )
    assert backups_in(backup_dir) == [] and lab.applied()[-1] == "0001_initial"


@backends("sqlite", "postgresql")
def test_an_encrypted_pre_migration_backup_rolls_back_with_the_identity_only(
    alias, lab, backup_dir, settings, tmp_path
):
    from tests.test_envelope import make_key

    key = make_key(tmp_path)
    settings.DBTOOLS = {**settings.DBTOOLS, "ENCRYPT_TO": [key.public]}
    lab.migrate("0007")
    lab.add(name="explode", code="X", dimension="7", weight=1)
    before = comparable_tables(database_contents(alias))

    out, err, code = safemigrate(alias, "lab", "0008", "--rollback-on-failure")
    assert code == 1
    assert "the backup is encrypted and no identity was given" in err
    assert "The backup cannot be read, so nothing was rolled back:" in err
    assert "is encrypted with age and no identity was given" in err
    assert [p for p in backup_dir.iterdir() if p.name.endswith(".json.age")]

    lab.migrate("0007")
    out, err, code = safemigrate(
        alias, "lab", "0008", "--rollback-on-failure", "--identity", str(key.identity)
    )
    assert code == 2, err
    assert "Rolled back: the schema of all " in out
    assert comparable_tables(database_contents(alias)) == before
