"""safemigrate shows what changed since its backup before it asks to restore:
exact counts and columns after a data migration, a schema change once, a
note above the bound, one line when the diff fails; on every backend."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connections
from django.db.migrations.loader import MigrationLoader

from dbtools.backup import backup_database
from dbtools.conf import settings_problems
from dbtools.diff.report import DiffError
from dbtools.migrate import changes
from dbtools.migrate.flow import RESTORE_HELP, Exit, Options, safe_migrate
from dbtools.migrate.plan import plan_migrations
from dbtools.restore import prepare_restore, restore_database
from tests.conftest import run_manage
from tests.test_safemigrate import RecordingConsole, lab, safemigrate  # noqa: F401  (a fixture)

QUESTION = f"{RESTORE_HELP}\nRestore data from the backup? [y/N] "
# name, price, stock: 0002 halves the price of sold-out items and renames them,
# resets negative stock, deletes the retired ones.
ITEMS = [
    ("lamp", 100, 0),
    ("desk", 300, 0),
    ("chair", 50, -2),
    ("retired-1", 10, 5),
    ("retired-2", 20, 5),
    ("shelf", 80, 3),
]
HEADER = re.compile(
    r"Compared with the backup db-backup-pre-migrate-[^ ]+\.json: 1 of \d+ tables differ "
    r"\(deleted: only in the backup; added: only in the database\):"
)


@pytest.fixture
def difflab(alias):
    call_command("migrate", "difflab", "0001", database=alias, verbosity=0)
    yield
    with connections[alias].cursor() as cursor:
        cursor.execute("DELETE FROM difflab_item")
    call_command("migrate", "difflab", database=alias, verbosity=0)


def add_items(alias: str) -> None:
    """The items, through the model as the applied migrations leave it."""
    loader = MigrationLoader(connections[alias])
    node = max(key for key in loader.applied_migrations if key[0] == "difflab")
    item = loader.project_state(node).apps.get_model("difflab", "Item")
    for name, price, stock in ITEMS:
        item.objects.using(alias).create(name=name, price=price, stock=stock)


def run_flow(
    alias: str, target: str, answers: list[bool], app: str = "difflab"
) -> RecordingConsole:
    plan = plan_migrations(alias, app, target)
    console = RecordingConsole(answers=answers)
    options = Options(using=alias, app_label=app, migration_name=target, accept_risk=True,
                      verbosity=0)  # fmt: skip
    outcome = safe_migrate(plan, options, console, StringIO(), StringIO())
    assert outcome.exit == Exit.OK, outcome.message
    return console


NOTHING_TO_PUT_BACK = (
    "",
    "A restore (merge) would put back no rows: none was deleted since the backup.",
)
REFUSED = "Not restored: Migrations applied since the backup was taken can change rows: "


def between_migrated_and_question(
    console: RecordingConsole, migrated: str
) -> list[tuple[str, str]]:
    """The summary: what comes between "Migrated" and the question, or the
    refusal that takes the question's place after a data migration."""
    start = console.lines.index(("success", f"Migrated: {migrated}."))
    end = next(
        i
        for i, line in enumerate(console.lines)
        if i > start and (line == ("ask", QUESTION) or line[1].startswith("Not restored: "))
    )
    return console.lines[start + 1 : end]


def refused_without_asking(console: RecordingConsole, migration: str) -> None:
    assert ("ask", QUESTION) not in console.lines
    assert console.lines[-1] == ("warning", console.lines[-1][1])
    assert console.lines[-1][1].startswith(f"{REFUSED}{migration} (RunPython).")


def test_a_data_migration_is_summed_up_exactly_and_the_refused_restore_is_not_asked(
    alias, difflab, backup_dir
):
    add_items(alias)
    console = run_flow(alias, "0002", answers=[True])
    header, *rest = between_migrated_and_question(console, "difflab.0002_clearance")
    assert header[0] == "" and HEADER.fullmatch(header[1]), header
    assert rest == [("", "  difflab.Item: 2 deleted, 3 changed (name 2, price 2, stock 1)")]
    refused_without_asking(console, "difflab.0002_clearance")


def test_a_column_the_migration_adds_is_one_schema_change_and_the_answer_yes_restores(
    alias, difflab, backup_dir
):
    call_command("migrate", "difflab", "0002", database=alias, verbosity=0)
    add_items(alias)
    console = run_flow(alias, "0003", answers=[True])
    header, *rest = between_migrated_and_question(console, "difflab.0003_code")
    assert HEADER.fullmatch(header[1]), header
    assert rest == [
        NOTHING_TO_PUT_BACK,
        ("", "  difflab.Item: no row differs"),
        ("", "    schema: code: not in the backup, takes ''"),
    ]
    (style, restored) = console.lines[-1]
    assert style == "success" and re.fullmatch(
        r"Restored 0 rows \(\d+ already present\)\.", restored
    )


@pytest.mark.parametrize(
    ("before", "target", "migrated", "change"),
    [
        ("0001", "0002", "lab.0002_rename_size", "size -> dimension (renamed)"),
        ("0003", "0004", "lab.0004_remove_legacy", "legacy: not in the model any more, ignored"),
    ],
)
def test_a_renamed_or_removed_column_is_one_schema_change(
    alias,
    backup_dir,
    lab,  # noqa: F811
    before,
    target,
    migrated,
    change,
):
    lab.migrate(before)
    for i in range(3):
        fields = {"size": i} if before == "0001" else {"dimension": i, "weight": 1}
        lab.add(name=f"gadget {i}", code="A", legacy="notes", **fields)
    console = run_flow(alias, target, answers=[False], app="lab")
    _header, *rest = between_migrated_and_question(console, migrated)
    assert rest == [
        NOTHING_TO_PUT_BACK,
        ("", "  lab.Gadget: no row differs"),
        ("", f"    schema: {change}"),
    ]


def test_the_summary_says_what_a_merge_would_do_and_a_merge_does_it(alias, difflab, backup_dir):
    add_items(alias)
    backup = backup_database(using=alias, label="pre-migrate")
    with connections[alias].cursor() as cursor:
        cursor.execute("DELETE FROM difflab_item WHERE name LIKE 'retired%%'")
        cursor.execute("UPDATE difflab_item SET price = 1 WHERE name = 'lamp'")
    lines = changes.changes_since_backup(backup, alias)
    assert lines[1:] == [
        ("A restore (merge) would put back 2 rows deleted since the backup; 1 row changed "
         "since would stay as it is (a merge never updates).", ""),
        ("  difflab.Item: 2 deleted, 1 changed (price 1)", ""),
    ]  # fmt: skip
    # Refused restores say so themselves: no claim about what one would do.
    assert [text for text, _ in changes.changes_since_backup(backup, alias, restorable=False)] == [
        lines[0][0],
        "  difflab.Item: 2 deleted, 1 changed (price 1)",
    ]
    restored = restore_database(prepare_restore(backup.path, using=alias), mode="merge")
    assert restored.inserted == 2
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT name, price FROM difflab_item ORDER BY name")
        assert list(cursor.fetchall()[:3]) == [("chair", 50), ("desk", 300), ("lamp", 1)]


def test_above_the_bound_the_diff_is_skipped_with_a_note_and_no_counts(
    alias, difflab, backup_dir, settings
):
    settings.DBTOOLS = {**settings.DBTOOLS, "MIGRATE_DIFF_MAX_ROWS": 5}
    add_items(alias)
    out, err, code = safemigrate(alias, "difflab", "0002", "--accept-risk", "--restore", "always")
    assert code == 0, err
    (note,) = [line for line in out.splitlines() if "compared with the backup" in line]
    assert re.fullmatch(
        r"Not compared with the backup: it holds [\d,]+ rows, more than "
        r"DBTOOLS\['MIGRATE_DIFF_MAX_ROWS'\] \(5\)\. `manage.py diffdb --file "
        r"db-backup-pre-migrate-[^ ]+\.json` shows what changed since it\.",
        note,
    ), note
    assert "difflab.Item" not in out and "deleted" not in out
    # --restore always: the restore is refused after a data migration, and says so.
    assert err.startswith(f"{REFUSED}difflab.0002_clearance (RunPython).")


def test_the_bound_counts_the_database_rows_too(alias, difflab, backup_dir, settings):
    add_items(alias)
    backup = backup_database(using=alias, label="pre-migrate")
    settings.DBTOOLS = {**settings.DBTOOLS, "MIGRATE_DIFF_MAX_ROWS": backup.rows}
    assert changes.changes_since_backup(backup, alias)[0][0].startswith("Compared with the backup")
    with connections[alias].cursor() as cursor:
        cursor.execute("INSERT INTO difflab_item (name, price, stock) VALUES ('new', 1, 1)")
    assert changes.changes_since_backup(backup, alias) == [(
        f"Not compared with the backup: the database's tables it covers hold more than "
        f"DBTOOLS['MIGRATE_DIFF_MAX_ROWS'] ({backup.rows:,}) rows. `manage.py diffdb --file "
        f"{backup.path.name}` shows what changed since it.",
        "",
    )]  # fmt: skip


def test_a_diff_that_fails_is_one_line_and_the_refusal_still_comes(
    alias, difflab, backup_dir, monkeypatch
):
    def fail(*args, **kwargs):
        raise DiffError("The backup could not be read.", fix="Check the file.")

    monkeypatch.setattr(changes, "diff_database", fail)
    add_items(alias)
    console = run_flow(alias, "0002", answers=[False])
    assert between_migrated_and_question(console, "difflab.0002_clearance") == [
        ("warning", "Could not compare with the backup, so no summary: "
                    "The backup could not be read. Check the file."),
    ]  # fmt: skip
    refused_without_asking(console, "difflab.0002_clearance")


def test_no_summary_when_nothing_is_asked_and_nothing_restored(alias, difflab, backup_dir):
    add_items(alias)
    out, err, code = safemigrate(alias, "difflab", "0002", "--accept-risk")  # --no-input: never
    assert code == 0, err
    assert "Migrated: difflab.0002_clearance." in out
    assert "ompared with the backup" not in out + err


def test_the_command_prints_the_summary_then_the_refusal_instead_of_a_prompt(
    alias, difflab, backup_dir
):
    add_items(alias)
    env = {"DBTOOLS_TESTS_BACKUP_DIR": str(backup_dir)}
    done = run_manage("safemigrate", "difflab", "0002", "--database", alias, "--accept-risk",
                      env=env, input="y\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    migrated = done.stdout.index("Migrated: difflab.0002_clearance.\n")
    summary = done.stdout.index(
        "\n  difflab.Item: 2 deleted, 3 changed (name 2, price 2, stock 1)\n"
    )
    assert migrated < summary and "Restore data from the backup?" not in done.stdout
    assert done.stderr.startswith(f"{REFUSED}difflab.0002_clearance (RunPython).")


@pytest.mark.parametrize("value", [-1, 1.5, True, "1000"])
def test_error_for_a_bound_that_is_not_a_whole_number(settings, value):
    settings.DBTOOLS = {"MIGRATE_DIFF_MAX_ROWS": value}
    assert settings_problems() == [
        f"DBTOOLS['MIGRATE_DIFF_MAX_ROWS'] must be a whole number of rows, 0 or more, "
        f"not {value!r}."
    ]


def test_an_unexpected_error_in_the_diff_is_one_line_and_the_question_still_comes(
    alias, difflab, backup_dir, monkeypatch
):
    def fail(*args, **kwargs):
        raise ValueError("Number is too large:\n 1e400")

    monkeypatch.setattr(changes, "diff_database", fail)
    call_command("migrate", "difflab", "0002", database=alias, verbosity=0)
    add_items(alias)
    console = run_flow(alias, "0003", answers=[False])
    assert between_migrated_and_question(console, "difflab.0003_code") == [
        ("warning", "Could not compare with the backup, so no summary (ValueError: Number is too "
                    "large: 1e400)."),
    ]  # fmt: skip
    assert ("ask", QUESTION) in console.lines
