"""The Python API and the signals a project connects to."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

import dbtools
from dbtools.signals import backup_finished, restore_finished
from shop import models as m
from shop.seed import seed_shop
from tests.conftest import backends
from tests.test_replay import backup_before_the_data_migration  # noqa: F401  (a fixture)


@pytest.fixture
def heard():  # type: ignore[no-untyped-def]
    """Every backup_finished and restore_finished sent while the test runs."""
    seen: list[tuple[str, dict]] = []

    def on_backup(sender, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(("backup", kwargs))

    def on_restore(sender, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(("restore", kwargs))

    backup_finished.connect(on_backup)
    restore_finished.connect(on_restore)
    yield seen
    backup_finished.disconnect(on_backup)
    restore_finished.disconnect(on_restore)


def test_every_documented_name_resolves():
    for name in dbtools.__all__:
        assert getattr(dbtools, name) is not None, name
    with pytest.raises(AttributeError):
        dbtools.no_such_thing  # noqa: B018


def test_backup_finished_carries_the_result(alias, backup_dir, heard):
    seed_shop(50, using=alias)
    result = dbtools.backup_database(using=alias)
    assert heard == [("backup", {"signal": backup_finished, "result": result, "using": alias})]
    assert result.path.exists()


def test_restore_finished_is_sent_once_committed_and_never_for_a_dry_run(alias, backup_dir, heard):
    seed_shop(50, using=alias)
    path = dbtools.backup_database(using=alias).path
    heard.clear()
    dbtools.restore_database(dbtools.prepare_restore(path, using=alias), dry_run=True)
    assert heard == []
    m.OrderItem.objects.using(alias).all().delete()
    result = dbtools.restore_database(dbtools.prepare_restore(path, using=alias), mode="merge")
    assert heard == [("restore", {"signal": restore_finished, "result": result, "using": alias})]
    assert result.inserted > 0


@backends("sqlite", "postgresql")
def test_a_replay_announces_the_restore_of_the_target_only(
    alias,
    backup_before_the_data_migration,  # noqa: F811
    heard,
):
    backup, _migrated = backup_before_the_data_migration
    heard.clear()
    dbtools.replay_restore(backup, using=alias, mode="replace")
    assert [(what, kwargs["using"]) for what, kwargs in heard] == [("restore", alias)]


@backends("sqlite")
def test_a_failing_receiver_is_a_warning_and_the_work_stands(alias, backup_dir):
    def broken(sender, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("chat server down")

    seed_shop(50, using=alias)
    backup_finished.connect(broken)
    restore_finished.connect(broken)
    try:
        err = StringIO()
        call_command("backupdb", database=alias, stdout=StringIO(), stderr=err)
        assert "WARNING: A backup_finished receiver" in err.getvalue()
        assert "RuntimeError: chat server down. The backup itself is complete." in err.getvalue()
        assert (backup_dir / "db-backup-latest.json").exists()

        m.OrderItem.objects.using(alias).all().delete()
        err = StringIO()
        call_command("restoredb", "--no-input", database=alias, stdout=StringIO(), stderr=err)
        assert "RuntimeError: chat server down. The restore itself is complete." in err.getvalue()
        assert m.OrderItem.objects.using(alias).count() > 0
    finally:
        backup_finished.disconnect(broken)
        restore_finished.disconnect(broken)


@backends("sqlite")
def test_the_documented_receiver_copies_each_backup_to_a_storage(
    alias, backup_dir, settings, tmp_path
):
    from tests.test_docs import ROOT

    python_api = (ROOT / "docs" / "python-api.md").read_text()
    block = python_api.split("# myproject/backups.py", 1)[1].split("\n", 1)[1].split("```", 1)[0]
    offsite = tmp_path / "offsite"
    settings.STORAGES = {
        **settings.STORAGES,
        "offsite": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(offsite)},
        },
    }
    namespace: dict = {}
    exec(compile(block, "docs/python-api.md", "exec"), namespace)  # connects copy_off_the_machine
    try:
        seed_shop(50, using=alias)
        result = dbtools.backup_database(using=alias)
    finally:
        backup_finished.disconnect(namespace["copy_off_the_machine"])
    assert (offsite / result.path.name).read_bytes() == result.path.read_bytes()
    assert result.warnings == []


@backends("sqlite")
@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("keep", -1, "--keep must be a whole number of 1 or more, not -1."),
        ("keep", 0, "--keep must be a whole number of 1 or more, not 0."),
        ("keep", True, "--keep must be a whole number of 1 or more, not True."),
        ("keep", "1", "--keep must be a whole number of 1 or more, not '1'."),
        ("jobs", 0, "--jobs must be a whole number of 1 or more, not 0."),
        ("label", "../elsewhere", (
            "A backup's label goes into its file name: lower-case letters, digits and dashes, "
            "starting with a letter, not '../elsewhere'."
        )),
    ],
)  # fmt: skip
def test_backup_database_checks_what_backupdb_checks(alias, backup_dir, option, value, message):
    """What the command refuses, the Python API refuses too, before anything is written
    or deleted: keep=-1 once deleted every older backup."""
    from dbtools.exceptions import ConfigurationError

    seed_shop(20, using=alias)
    first, second = dbtools.backup_database(using=alias), dbtools.backup_database(using=alias)
    before = sorted(backup_dir.iterdir())
    with pytest.raises(ConfigurationError) as raised:
        dbtools.backup_database(using=alias, **{option: value})
    assert str(raised.value) == message
    assert sorted(backup_dir.iterdir()) == before and first.path in before and second.path in before


@backends("sqlite")
def test_backupdb_says_what_backup_database_says(alias, backup_dir):
    for option in ("--keep", "--jobs"):
        with pytest.raises(CommandError) as raised:
            call_command("backupdb", "--database", alias, option, "0")
        assert str(raised.value) == f"{option} must be a whole number of 1 or more, not 0."
    assert not backup_dir.exists()


def test_safe_migrate_checks_what_safemigrate_checks(alias):
    from dbtools.exceptions import MigrationError
    from tests.test_safemigrate import RecordingConsole

    plan = dbtools.plan_migrations(alias)
    with pytest.raises(MigrationError) as raised:
        dbtools.safe_migrate(
            plan, dbtools.SafeMigrateOptions(using=alias, restore="yes"), RecordingConsole()
        )
    assert str(raised.value) == "restore must be one of ask, never, always (or None), not 'yes'."
    with pytest.raises(MigrationError) as raised:
        plan.blocking("severe")
    assert str(raised.value) == "--fail-on must be one of warning, high, not 'severe'."


def test_an_error_carries_its_parts_and_renders_them_in_one_line():
    from dbtools.exceptions import ArchiveError, RestoreError

    rolled_back = RestoreError("It failed;", rolled_back=True, fix="Run it again.")
    assert (rolled_back.problem, rolled_back.changed) == ("It failed;", False)
    assert str(rolled_back) == (
        "It failed; nothing was changed: the restore was rolled back. Run it again."
    )
    unread = ArchiveError("x could not be read.", changed=False, fix="run it again.")
    assert str(unread) == "x could not be read. Nothing was changed; run it again."
    assert str(RestoreError("Only a problem.")) == "Only a problem."
    assert RestoreError("Only a problem.").changed is None


def test_a_rollback_says_from_the_fields_that_a_failed_restore_wrote_nothing():
    from dbtools.exceptions import DatabaseUnavailable, RestoreError
    from dbtools.migrate.rollback import restore_cause
    from dbtools.restore.plan import cannot_go_on

    several = cannot_go_on(["A warning."], ["shop.X.y is required now."], replayable=False)
    assert str(several).split("\n") == [
        "A warning.",
        "The restore cannot go on (1 problem(s)); nothing was changed.",
        "  - shop.X.y is required now.",
    ]
    assert restore_cause(several) == (
        "A warning. The restore cannot go on (1 problem(s)); the restore wrote nothing "
        "(it was rolled back). - shop.X.y is required now."
    )
    edited = RestoreError("shop.X changed meanwhile.", rolled_back=True, fix="Run it again.")
    assert restore_cause(edited) == (
        "shop.X changed meanwhile. The restore wrote nothing (it was rolled back). Run it again."
    )
    # An error that does not say whether anything changed is told as it is.
    assert restore_cause(DatabaseUnavailable("The server went away")) == "The server went away."


@backends("sqlite")
def test_restore_route_refuses_what_restoredb_refuses(alias):
    from dbtools.exceptions import ConfigurationError
    from dbtools.restore.replay import restore_route

    with pytest.raises(ConfigurationError, match=r"^--replay and --no-replay contradict"):
        restore_route(alias, replay=True, no_replay=True)
    assert restore_route(alias, replay=True) == "replay"
