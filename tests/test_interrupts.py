"""Interrupted commands, as a fault matrix: a signal at a chosen phase of a real
manage.py process, then the same command again.

Each point runs the command in a subprocess paused at a named phase
(tests/faults), sends SIGINT, SIGTERM or SIGKILL, and checks that
(a) nothing outside the command's scope changed (the rows of a rolled-back
restore, the backups of an interrupted backup), (b) no unfinished file,
spool, scratch database or temporary folder is left (the subprocess gets a
temporary folder of its own), (c) the command printed one line saying what
state it left and exited 128 + the signal, and (d) the next run of the same
command succeeds and says what it did.

By default a handful of points run on each backend (a few seconds each);
DBTOOLS_FULL_FAULT_MATRIX=1 runs every signal at every phase.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

from dbtools.archive import verify
from dbtools.backup import backup_database
from dbtools.restore.scratch import SCRATCH_PREFIX
from shop import models as m
from shop.seed import seed_shop
from tests.conftest import BACKENDS, ROOT, backends, manage_command, manage_env, run_manage
from tests.helpers import comparable_tables, database_contents
from tests.test_safemigrate import LAST, Lab

FULL = os.environ.get("DBTOOLS_FULL_FAULT_MATRIX") == "1"
SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


class Faults:
    """One test's folders, and manage.py run paused at a phase and signalled."""

    def __init__(self, alias: str, tmp_path: Path) -> None:
        self.alias = alias
        self.backups = tmp_path / "backups"
        self.temp = tmp_path / "tmp"  # the subprocess's TMPDIR: whatever it leaves is here
        self.temp.mkdir()
        self.paused = tmp_path / "paused"
        self.pids: list[int] = []  # of the interrupted runs
        self.env = {
            "DBTOOLS_TESTS_BACKUP_DIR": str(self.backups),
            "DBTOOLS_TESTS_RUN_FOLDER": str(
                Path(settings.DATABASES["default"]["TEST"]["NAME"]).parent
            ),
            "TMPDIR": str(self.temp),
        }

    def interrupt(self, args: list[str], phase: str, signame: str) -> Run:
        """Run manage.py until `phase`, then send the signal; what it printed, and how it ended."""
        self.paused.unlink(missing_ok=True)
        env = {
            **self.env,
            "DBTOOLS_TEST_PAUSE_AT": phase,
            "DBTOOLS_TEST_PAUSED_FILE": str(self.paused),
        }
        process = subprocess.Popen(
            manage_command(*args),
            cwd=ROOT,
            env=manage_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.pids.append(process.pid)
        try:
            deadline = time.monotonic() + 90
            while not self.paused.exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    out, err = process.communicate()
                    pytest.fail(f"{args} never reached {phase}:\n{out}\n{err}")
                time.sleep(0.05)
            process.send_signal(SIGNALS[signame])
            started = time.monotonic()
            out, err = process.communicate(timeout=30)
        except BaseException:
            process.kill()
            process.communicate()
            raise
        assert time.monotonic() - started < 15, "the command did not stop within seconds"
        return Run(process.returncode, out, err)

    def again(self, *args: str) -> Run:
        done = run_manage(*args, env=self.env)
        return Run(done.returncode, done.stdout, done.stderr)

    def backups_left(self) -> list[str]:
        return sorted(p.name for p in self.backups.iterdir()) if self.backups.exists() else []

    def assert_nothing_left(self, signame: str) -> None:
        """No unfinished file or spool beside the backups, nothing in the temporary
        folder, no scratch database on the server."""
        if signame == "SIGKILL":
            # Nothing can clean up after SIGKILL: the next command does (checked there).
            return
        assert [n for n in self.backups_left() if n.endswith(".partial")] == []
        assert sorted(p.name for p in self.temp.iterdir()) == []
        assert self.scratch_databases() == []

    def scratch_databases(self) -> list[str]:
        """Scratch databases the interrupted runs made (named dbtools_scratch_<host>_<pid>_…):
        other test runs on the same server have theirs."""
        connection = connections[self.alias]
        if connection.vendor == "sqlite":
            return []  # SQLite's scratch database is a file in the temporary folder
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT datname FROM pg_database")
            else:
                cursor.execute("SHOW DATABASES")
            names = [name for (name,) in cursor.fetchall()]
        return sorted(
            n
            for n in names
            for pid in self.pids
            if n.startswith(SCRATCH_PREFIX) and f"_{pid}_" in n
        )


def the_line(run: Run, signame: str) -> str:
    """The one line an interrupted command prints, checked to be the only one on stderr."""
    assert run.returncode == 128 + SIGNALS[signame], (run.returncode, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"CommandError: Interrupted by {signame}. "), lines[0]
    return lines[0].removeprefix(f"CommandError: Interrupted by {signame}. ")


def killed(run: Run) -> None:
    assert run.returncode == -signal.SIGKILL


# The points ------------------------------------------------------------------------

# Each phase, with the signals sent there by default and on which backends;
# DBTOOLS_FULL_FAULT_MATRIX=1 sends all three at every phase on every backend.
ALL = ("sqlite", "postgresql", "mariadb")
BACKUP_POINTS = {
    "backup:rows": {"SIGINT": ALL, "SIGKILL": ("sqlite",)},
    "backup:written": {"SIGTERM": ("sqlite",)},
}
RESTORE_POINTS = {
    ("replace", "restore:loaded"): {"SIGTERM": ALL},
    ("merge", "restore:loaded"): {},
    ("merge", "restore:committed"): {"SIGINT": ("sqlite",)},
    ("replace", "restore:committed"): {},
    # The first load of a replay goes into its scratch database, the second into this one.
    ("replay", "restore:loaded"): {},
}
DRILL_POINTS = {"restore:loaded": {"SIGTERM": ("sqlite",)}, "backup:rows": {}}
MIGRATE_POINTS = {"backup:rows": {}, "migrate:applied": {"SIGINT": ALL}}


def points(table: dict) -> list:
    chosen = []
    for key, default in table.items():
        for signame in SIGNALS:
            if FULL or signame in default:
                label = "-".join(key) if isinstance(key, tuple) else key
                backends = ALL if FULL else default[signame]
                chosen.append(pytest.param(key, signame, backends, id=f"{label}-{signame}"))
    return chosen


def chosen(alias: str, backends: tuple[str, ...]) -> None:
    backend = next(b for b, a in BACKENDS.items() if a == alias)
    if backend not in backends:
        pytest.skip("in the full fault matrix only (DBTOOLS_FULL_FAULT_MATRIX=1)")


@pytest.fixture
def faults(alias, tmp_path, settings):
    settings.DBTOOLS = {"BACKUP_DIR": str(tmp_path / "backups")}
    return Faults(alias, tmp_path)


@pytest.mark.parametrize(("phase", "signame", "backends"), points(BACKUP_POINTS))
def test_an_interrupted_backup(alias, faults, phase, signame, backends):
    chosen(alias, backends)
    seed_shop(300, using=alias)
    first = backup_database(using=alias)
    before = {p.name: p.read_bytes() for p in faults.backups.iterdir()}

    run = faults.interrupt(["backupdb", "--database", alias], phase, signame)

    if signame == "SIGKILL":
        killed(run)
    elif phase == "backup:rows":
        assert the_line(run, signame) == (
            "Nothing was kept (the unfinished backup was removed); earlier backups are untouched."
        )
        assert {p.name: p.read_bytes() for p in faults.backups.iterdir()} == before
    else:
        line = the_line(run, signame)
        new = sorted(set(faults.backups_left()) - set(before))
        assert len(new) == 1 and line == (
            f"The backup {new[0]} is complete; db-backup-latest was not updated and no old "
            f"backup was deleted."
        )
        assert verify(faults.backups / new[0])["rows"] == verify(first.path)["rows"]
        assert (faults.backups / "db-backup-latest.json").read_bytes() == first.path.read_bytes()
    faults.assert_nothing_left(signame)

    after = faults.again("backupdb", "--database", alias)
    assert after.returncode == 0, after.stderr
    assert "Latest backup: " in after.stdout
    listing = faults.again("listbackups")
    leftover = "left by a backup that was interrupted; safe to delete."
    assert (leftover in listing.stdout) == (signame == "SIGKILL" and phase == "backup:rows")


@pytest.mark.parametrize(("point", "signame", "backends"), points(RESTORE_POINTS))
def test_an_interrupted_restore(alias, faults, point, signame, backends):
    chosen(alias, backends)
    mode, phase = point
    seed_shop(300, using=alias)
    backup = backup_database(using=alias).path
    m.NewsletterSubscriber.objects.using(alias).all().delete()  # what the restore puts back
    m.UserActivity.objects.using(alias).filter(id__gt=50).delete()
    before = comparable_tables(database_contents(alias))
    args = ["restoredb", "--file", str(backup), "--database", alias, "--no-input"]
    args += {"replace": ["--replace"], "replay": ["--replay"], "merge": []}[mode]

    run = faults.interrupt(args, phase, signame)

    if signame == "SIGKILL":
        killed(run)
    if phase == "restore:loaded":
        if signame != "SIGKILL":
            assert the_line(run, signame) == (
                "Nothing was restored; the database is unchanged."
                if mode == "replay"  # interrupted in the scratch database
                else "The restore was rolled back; the database is unchanged."
            )
        assert comparable_tables(database_contents(alias)) == before
    elif signame != "SIGKILL":
        line = the_line(run, signame)
        assert line.startswith("The restore was committed before the interrupt: ")
        assert line.endswith(
            f" rows were restored from {backup.name}; a restore_finished receiver was cut short."
        )
        assert comparable_tables(database_contents(alias)) != before
    faults.assert_nothing_left(signame)

    after = faults.again(*args)
    assert after.returncode == 0, after.stderr
    if mode == "merge" and phase == "restore:committed":
        assert "Restored 0 rows into " in after.stdout  # the first run's rows are all there
    else:
        assert "Restored " in after.stdout and f"{backup.name} in " in after.stdout


@pytest.mark.parametrize(("phase", "signame", "backends"), points(DRILL_POINTS))
def test_an_interrupted_drill(alias, faults, phase, signame, backends):
    chosen(alias, backends)
    seed_shop(300, using=alias)
    backup_database(using=alias)
    before = comparable_tables(database_contents(alias))
    listed = sorted(faults.backups_left())
    args = ["listbackups", "--drill", "--database", alias]

    run = faults.interrupt(args, phase, signame)

    if signame == "SIGKILL":
        killed(run)
    else:
        assert the_line(run, signame) == (
            "Nothing was changed: listbackups only reads, and a drill works on a scratch copy."
        )
    assert comparable_tables(database_contents(alias)) == before
    assert sorted(faults.backups_left()) == listed
    faults.assert_nothing_left(signame)

    after = faults.again(*args)
    assert after.returncode == 0, after.stderr
    assert "Drill passed" in after.stdout
    assert faults.scratch_databases() == []  # the next run removed what a SIGKILL left


@pytest.fixture
def lab(alias):
    lab = Lab(alias)
    yield lab
    with connections[alias].cursor() as cursor:
        cursor.execute("DELETE FROM lab_gadget")
    lab.migrate(LAST)


@pytest.mark.parametrize(("phase", "signame", "backends"), points(MIGRATE_POINTS))
def test_an_interrupted_safemigrate(alias, faults, lab, phase, signame, backends):
    chosen(alias, backends)
    lab.migrate("0001")
    lab.add(name="a", code="A", size=1)
    args = ["safemigrate", "lab", "0003", "--database", alias, "--no-input", "--accept-risk"]

    run = faults.interrupt(args, phase, signame)

    if signame == "SIGKILL":
        killed(run)
    elif phase == "backup:rows":
        assert the_line(run, signame) == (
            "Nothing was kept (the unfinished backup was removed); earlier backups are untouched. "
            "Nothing was migrated."
        )
        assert lab.applied()[-1] == "0001_initial"
    else:
        kept = [n for n in faults.backups_left() if n.startswith("db-backup-pre-migrate-")]
        assert len(kept) == 1
        # Paused between two migrations: nothing of the next one was sent, so it is
        # not "half-applied" even where DDL cannot be rolled back.
        assert the_line(run, signame) == (
            f"Migrate was interrupted: applied lab.0002_rename_size; lab.0003_add_weight is not "
            f"recorded as applied and had not begun. The pre-migrate backup {kept[0]} was kept."
        )
        assert lab.applied()[-1] == "0002_rename_size"
    faults.assert_nothing_left(signame)

    after = faults.again(*args)
    assert after.returncode == 0, after.stderr
    assert lab.applied()[-1] == "0003_add_weight"
    assert "Migrated: " in after.stdout


def test_sigterm_unwinds_like_ctrl_c_and_a_second_signal_does_not_cut_the_clean_up_short():
    from dbtools.interrupts import Interrupted, exit_status, one_line, signals_raise, tell

    cleaned = False
    with pytest.raises(Interrupted) as caught, signals_raise():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        finally:
            os.kill(os.getpid(), signal.SIGINT)  # impatient: ignored while cleaning up
            time.sleep(0.1)
            cleaned = True
    assert cleaned
    assert caught.value.signum == signal.SIGTERM and exit_status(caught.value) == 143
    tell(caught.value, "The restore was rolled back; the database is unchanged.")
    assert one_line(caught.value, "Nothing was changed.") == (
        "Interrupted by SIGTERM. The restore was rolled back; the database is unchanged."
    )
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # put back as it was


def lock_waits(alias: str) -> int:
    """How many statements in this test database wait for a lock another session holds."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
        else:
            cursor.execute(
                "SELECT (SELECT COUNT(*) FROM information_schema.INNODB_TRX "
                "WHERE trx_state = 'LOCK WAIT') + (SELECT COUNT(*) FROM "
                "information_schema.PROCESSLIST WHERE DB = DATABASE() AND STATE LIKE '%%lock%%')"
            )
        (waiting,) = cursor.fetchone()
    return int(waiting)


def signalled_while_waiting(alias: str, faults: Faults, signame: str, *args: str) -> Run:
    """restoredb --file ARGS, signalled once it waits for a lock: how it ended,
    checked to be within seconds."""
    process = subprocess.Popen(
        manage_command("restoredb", "--file", *args, "--database", alias, "--no-input"),
        cwd=ROOT,
        env=manage_env(faults.env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not lock_waits(alias):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the restore never waited for the lock"
            time.sleep(0.1)
        process.send_signal(SIGNALS[signame])
        started = time.monotonic()
        out, err = process.communicate(timeout=45)
        stopped = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert stopped < 10, f"the restore went on waiting for its lock for {stopped:.0f} s"
    return Run(process.returncode, out, err)


@backends("postgresql", "mariadb")  # SQLite's wait is its own busy timeout of a few seconds
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_an_interrupt_stops_a_restore_that_waits_for_a_lock(alias, faults, signame):
    """The server would make the restore wait for its lock timeout (50 s on
    MariaDB): the interrupt cancels the waiting statement instead."""
    seed_shop(100, using=alias)
    backup = backup_database(using=alias).path
    connection = connections[alias]
    holder = connection.get_new_connection(connection.get_connection_params())
    try:
        locker = holder.cursor()
        if connection.vendor == "postgresql":
            locker.execute("BEGIN")
        else:
            locker.execute("START TRANSACTION")
        table = connection.ops.quote_name(m.NewsletterSubscriber._meta.db_table)
        locker.execute(f"SELECT * FROM {table} FOR UPDATE")
        run = signalled_while_waiting(alias, faults, signame, str(backup), "--replace")
        assert the_line(run, signame) == "The restore was rolled back; the database is unchanged."
        locker.execute(f"SELECT COUNT(*) FROM {table}")
        assert locker.fetchone()[0] > 0  # the rows the lock holder sees are still there
    finally:
        holder.rollback()
        holder.close()
    faults.assert_nothing_left(signame)


@backends("mariadb")
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_an_interrupt_stops_a_load_data_that_waits_for_a_lock(alias, faults, signame):
    """An empty table goes in by LOAD DATA, run in a thread while the main
    thread writes the rows: the interrupt, taken by the main thread, cancels
    the thread's statement too."""
    from tests.difflab.models import Link

    Link.objects.using(alias).bulk_create(Link(url=f"u{n}", title="t") for n in range(100))
    backup = backup_database(using=alias, only=["difflab.Link"]).path
    Link.objects.using(alias).all().delete()
    connection = connections[alias]
    holder = connection.get_new_connection(connection.get_connection_params())
    try:
        holder.cursor().execute(f"LOCK TABLES {Link._meta.db_table} READ")
        run = signalled_while_waiting(alias, faults, signame, str(backup), "--only", "difflab.Link")
        assert the_line(run, signame) == "The restore was rolled back; the database is unchanged."
    finally:
        holder.close()
    assert not Link.objects.using(alias).exists()
    faults.assert_nothing_left(signame)


ROLLBACK_POINTS = {"migrate:unapplied": {"SIGINT": ALL, "SIGTERM": ("mariadb",)}}


@pytest.mark.parametrize(("phase", "signame", "backends"), points(ROLLBACK_POINTS))
def test_an_interrupted_rollback(alias, faults, lab, phase, signame, backends):
    """A failed migration, and the rollback cut short after it unapplied one migration."""
    chosen(alias, backends)
    lab.migrate("0006")
    lab.add(name="explode", code="X", dimension="7", weight=1)
    args = ["safemigrate", "lab", "0008", "--database", alias, "--no-input", "--accept-risk",
            "--rollback-on-failure"]  # fmt: skip

    run = faults.interrupt(args, phase, signame)

    if signame == "SIGKILL":
        killed(run)
    else:
        failure, interrupted = run.stderr.strip().split("\nCommandError: ")
        assert failure.startswith("Migration failed: lab.0008_color: a gadget is named 'explode'")
        kept = [n for n in faults.backups_left() if n.startswith("db-backup-pre-migrate-")]
        assert len(kept) == 1
        assert the_line(Run(run.returncode, "", f"CommandError: {interrupted}"), signame) == (
            "lab.0008_color had failed, and the rollback was interrupted while migrating back. "
            "The rollback unapplied lab.0007_dimension_text. The data was not restored. To "
            "finish: `manage.py migrate lab 0006_code_required`, then `manage.py restoredb "
            f"--replace --file {kept[0]}`. The pre-migrate backup {kept[0]} was kept."
        )
    assert lab.applied()[-1] == "0006_code_required"
    faults.assert_nothing_left(signame)

    after = faults.again(*args)
    assert after.returncode == 2, after.stderr
    assert "Rolled back: the schema of all " in after.stdout
    assert lab.applied()[-1] == "0006_code_required"


def test_a_migration_begun_before_the_interrupt_may_be_half_applied_where_ddl_is_not_undone(
    alias, lab
):
    """What the interrupted migrate's line says depends on whether a statement
    of the next migration was sent: counted from the last record."""
    from django.db.migrations.loader import MigrationLoader

    from dbtools.migrate.run import StatementsSinceRecord, interrupted_migrate

    since = StatementsSinceRecord()

    def send(sql: str) -> None:
        since(lambda *args: None, sql, None, False, {})

    send('INSERT INTO "django_migrations" ("app", "name", "applied") VALUES (%s, %s, %s)')
    send("PRAGMA foreign_key_check")
    send('SELECT "django_migrations"."id" FROM "django_migrations"')
    assert since.count == 0
    send('ALTER TABLE "lab_gadget" ADD COLUMN "weight" integer DEFAULT 0 NOT NULL')
    assert since.count == 1

    lab.migrate("0002")
    graph = MigrationLoader(connections[alias]).graph
    planned = [(graph.nodes[("lab", "0003_add_weight")], False)]
    before = {("lab", "0001_initial"), ("lab", "0002_rename_size")}
    begun = interrupted_migrate(alias, planned, before, started=True)
    not_begun = interrupted_migrate(alias, planned, before, started=False)
    assert not_begun == (
        "Migrate was interrupted: nothing was migrated; lab.0003_add_weight is not recorded "
        "as applied and had not begun."
    )
    half = "" if connections[alias].features.can_rollback_ddl else " and may be half-applied"
    assert begun == (
        "Migrate was interrupted: nothing was migrated; lab.0003_add_weight is not recorded "
        f"as applied{half}."
    )


@pytest.mark.parametrize(
    "sql",
    [
        'WITH moved AS (UPDATE "lab_gadget" SET "size" = 1 RETURNING "id") SELECT count(*) FROM moved',
        pytest.param(
            "SELECT setval('lab_gadget_id_seq', 1000)",
            marks=pytest.mark.xfail(
                strict=True,
                reason="a SELECT is counted as changing nothing, but setval moves a sequence, "
                "which no rollback undoes: the interrupted line says the migration had not begun",
            ),
        ),
        'INSERT INTO "lab_history" ("app", "name") SELECT "app", "name" FROM "django_migrations"',
        "DELETE FROM `lab_history` WHERE `name` IN (SELECT `name` FROM `django_migrations`)",
    ],
    ids=[
        "data-modifying-cte",
        "select-setval",
        "insert-reading-the-records",
        "delete-reading-them",
    ],
)
def test_a_statement_that_writes_counts_as_begun(sql):
    """The interrupted-migrate line says 'had not begun' only when nothing
    migrate sent since its last record could have changed anything."""
    from dbtools.migrate.run import StatementsSinceRecord

    since = StatementsSinceRecord()
    since(lambda *args: None, sql, None, False, {})
    assert since.count == 1


@backends("mariadb")
def test_the_clean_up_after_a_late_taken_signal_is_not_cancelled(alias, monkeypatch):
    """The main thread, blocked in C, takes the signal just after its grace
    ran out, while the watcher is still connecting to cancel: the statement it
    then sends for its clean-up must not be the one the cancel hits."""
    import threading

    from dbtools import interrupts
    from dbtools.backends.mysql import MySQLBackend

    canceller = MySQLBackend.statement_canceller

    def slow_to_connect(backend: MySQLBackend):  # type: ignore[no-untyped-def]
        cancel = canceller(backend)
        assert cancel is not None

        def slowly() -> None:
            time.sleep(0.5)  # a busy server is slow to accept the canceller's connection
            cancel()

        return slowly

    monkeypatch.setattr(MySQLBackend, "statement_canceller", slow_to_connect)
    connection = connections[alias]
    connection.ensure_connection()
    cleaned_up = None
    with interrupts.signals_raise():
        try:
            threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
            with connection.cursor() as cursor:
                # Ends a little after the grace, before the cancel is sent; DO returns
                # no rows, so none is left unread when the signal is taken.
                cursor.execute("DO SLEEP(%s)", [interrupts.GRACE_SECONDS + 0.2])
            time.sleep(1)
        except interrupts.Interrupted:
            with connection.cursor() as cursor:
                cursor.execute("SELECT SLEEP(1)")  # 1 when cancelled, 0 when it ran out
                (cleaned_up,) = cursor.fetchone()
    assert cleaned_up == 0


CLEAN_UP_BLOCKED_IN_C = """
import json, os, signal, sys, threading, time
import django
from django.conf import settings
settings.configure(DATABASES={"default": json.loads(os.environ["DBTOOLS_TEST_DATABASE"])})
django.setup()
from django.db import connection
from dbtools import interrupts

def interrupt():
    os.kill(os.getpid(), signal.SIGINT)

connection.ensure_connection()
with interrupts.signals_raise():
    try:
        threading.Timer(0.1, interrupt).start()
        time.sleep(5)  # running Python: the first signal is taken at once
    except interrupts.Interrupted:
        for after in (0.5, 0.7, 0.9):
            threading.Timer(after, interrupt).start()
        print("cleaning up", flush=True)
        with connection.cursor() as cursor:
            cursor.execute("DO SLEEP(8)")  # a clean-up statement waiting for a lock
"""


@backends("mariadb")
@pytest.mark.xfail(
    strict=True,
    reason="the watcher returns once the first signal is taken, and Python runs the handler "
    "for the signals that arrive while mysqlclient waits once, after it returns: a clean-up "
    "blocked in a MariaDB statement is ended by neither the cancel nor a third signal",
)
def test_a_third_signal_ends_a_clean_up_blocked_in_a_mariadb_statement(alias):
    import json
    import sys

    database = {
        key: value
        for key, value in connections[alias].settings_dict.items()
        if key in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT")
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", CLEAN_UP_BLOCKED_IN_C],
        cwd=ROOT,
        env={**os.environ, "DBTOOLS_TEST_DATABASE": json.dumps(database)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout == "cleaning up\n", done.stderr
    assert (done.returncode, time.monotonic() - started < 4) == (-signal.SIGINT, True)
