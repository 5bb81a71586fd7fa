"""backupdb: scope, order, exactness, snapshot, files, failures."""

from __future__ import annotations

import datetime
import gzip
import json
import re
import signal
import stat
import subprocess
import threading
import time
from io import StringIO

import orjson
import pytest
from django.core.management import CommandError, call_command
from django.core.management.base import SystemCheckError
from django.db import connections

from dbtools.archive import ArchiveReader
from dbtools.backends import database_name, vendor_name
from dbtools.backup import backup_database
from dbtools.exceptions import BackupError, ConfigurationError
from dbtools.graph import plan_tables
from dbtools.storage.catalog import TIMESTAMPED
from shop import models as m
from shop.seed import seed_shop
from tests.conftest import ROOT, backends, manage_command, manage_env, run_manage
from tests.data import fill_edge_cases
from tests.helpers import comparable_tables, database_contents, read_backup


def test_every_value_of_every_type_is_written_exactly(alias, backup_dir):
    fill_edge_cases(alias)
    seed_shop(300, using=alias)
    result = backup_database(using=alias)
    assert comparable_tables(read_backup(result.path)) == comparable_tables(
        database_contents(alias)
    )


def test_file_is_one_json_document_with_one_row_per_line(alias, backup_dir):
    fill_edge_cases(alias)
    result = backup_database(using=alias)
    document = json.loads(result.path.read_text())
    assert document["format"] == "dbtools-backup" and document["version"] == 1
    assert document["summary"]["rows"] == sum(t["count"] for t in document["tables"])
    lines = result.path.read_bytes().split(b"\n")
    assert len(lines) == 1 + len(document["tables"]) * 2 + document["summary"]["rows"] + 2
    jq = subprocess.run(
        ["jq", "-e", ".summary.rows", str(result.path)], capture_output=True, text=True
    )
    assert jq.returncode == 0 and int(jq.stdout) == document["summary"]["rows"]


def test_scope_is_every_table_the_orm_manages(alias, backup_dir):
    labels = plan_tables(alias).labels()
    assert {"edgecases.Place", "edgecases.Restaurant", "edgecases.ItalianRestaurant"} <= set(labels)
    assert {"edgecases.Article_tags", "edgecases.Article_related", "shop.User_groups"} <= set(
        labels
    )
    assert "edgecases.ProxyPlace" not in labels
    assert "edgecases.UnmanagedReport" not in labels
    assert "auth.User" not in labels  # swapped for shop.User
    assert ("pgonly.PostgresTypes" in labels) == (connections[alias].vendor == "postgresql")


def test_metadata_describes_the_source_without_secrets(alias, backup_dir):
    result = backup_database(using=alias)
    text = result.path.read_text()
    with ArchiveReader(result.path) as reader:
        meta = reader.meta
    settings_dict = connections[alias].settings_dict
    assert meta["vendor"] == connections[alias].vendor
    assert "0001_initial" in meta["migrations"]["shop"]
    assert '"django_migrations"' not in text
    for secret in (settings_dict.get("PASSWORD"), settings_dict.get("HOST")):
        if secret:
            assert secret not in text


def test_tables_follow_their_foreign_keys_and_cycles_are_recorded(alias):
    plan = plan_tables(alias)
    position = {label: i for i, label in enumerate(plan.labels())}
    for table in plan.tables:
        for target in table.depends_on:
            if (
                target in position
                and (table.label, target) not in {("edgecases.Author", "edgecases.Book")}
                and target != table.label
            ):
                assert position[target] < position[table.label], (table.label, target)
    assert ("edgecases.Author", "edgecases.Book") in plan.cycles
    assert ("edgecases.Node",) in plan.cycles and ("shop.Category",) in plan.cycles
    assert (
        position["edgecases.Place"]
        < position["edgecases.Restaurant"]
        < position["edgecases.ItalianRestaurant"]
    )


def test_only_and_exclude_take_app_and_model_labels(alias):
    only = plan_tables(alias, only=["edgecases.Article", "shop"]).labels()
    assert "edgecases.Article_tags" in only and "edgecases.Tag" not in only and "shop.Order" in only
    excluded = plan_tables(alias, exclude=["shop", "edgecases.Node"]).labels()
    assert not any(label.startswith("shop.") for label in excluded)
    assert "edgecases.Node" not in excluded and "edgecases.Tag" in excluded


def test_unknown_label_is_refused(alias):
    with pytest.raises(ConfigurationError) as raised:
        plan_tables(alias, only=["shop.Nope", "nosuchapp"])
    message = str(raised.value)
    assert message.startswith(
        "Unknown model 'shop.Nope'; the models of shop are shop.Account, shop.Address, "
    )
    assert "Unknown app 'nosuchapp' in 'nosuchapp'; the installed apps are " in message
    assert message.endswith(" Give an app label or app_label.ModelName.")


def test_rows_are_in_primary_key_order_across_pages(alias, backup_dir, monkeypatch):
    monkeypatch.setattr("dbtools.backup.rows.BATCH_ROWS", 7)
    seed_shop(5_000, using=alias)
    result = backup_database(
        using=alias, only=["shop.Address", "shop.VerificationToken", "shop.UserActivity"]
    )
    tables = read_backup(result.path)
    # The database's own ORDER BY pk (MariaDB orders native UUIDs its own way).
    assert tables == database_contents(alias, list(tables))
    assert len(tables["shop.UserActivity"]) > 7 and len(tables["shop.VerificationToken"]) > 7


def test_backup_is_one_moment_in_time(alias, backup_dir):
    """A transaction committed by another connection mid-backup is wholly absent."""
    seed_shop(300, using=alias)
    if connections[alias].vendor == "sqlite":
        with connections[alias].cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")  # lets the writer commit during the read
    other = connections.create_connection(alias)
    users_before = m.User.objects.using(alias).count()
    orders_before = m.Order.objects.using(alias).count()
    wrote = []

    def write_from_elsewhere(label: str, done: int, expected: int) -> None:
        if label == "shop.User" and not wrote:
            with other.cursor() as cursor:
                other.set_autocommit(False)
                cursor.execute(
                    "INSERT INTO shop_user (id, password, is_superuser, username, first_name, last_name, email, "
                    "is_staff, is_active, date_joined, image) VALUES (9999, '!', %s, 'late', '', '', "
                    "'late@example.com', %s, %s, %s, '')",
                    [False, False, True, "2025-01-01 00:00:00"],
                )
                cursor.execute(
                    "INSERT INTO shop_order (id, number, user_id, email, status, subtotal, shipping, total, "
                    "currency, notes, placed_at, created_at, updated_at) VALUES (99999, 'LATE', 9999, "
                    "'late@example.com', 'paid', 1, 0, 1, 'GBP', '', %s, %s, %s)",
                    ["2025-01-01 00:00:00"] * 3,
                )
                other.commit()
            wrote.append(True)

    try:
        result = backup_database(using=alias, only=["shop"], progress=write_from_elsewhere)
    finally:
        other.close()
    assert wrote
    tables = read_backup(result.path)
    assert len(tables["shop.User"]) == users_before
    assert len(tables["shop.Order"]) == orders_before  # the order committed after User was read
    assert m.Order.objects.using(alias).count() == orders_before + 1
    after = read_backup(backup_database(using=alias, only=["shop"]).path)
    assert len(after["shop.Order"]) == orders_before + 1


@backends("postgresql")
def test_backup_through_pgbouncer_in_transaction_mode(alias, pgbouncer, tmp_path):
    seed_shop(20_000, using=alias)  # UserActivity spans several 5,000-row fetches
    direct = tmp_path / "direct.json"
    pooled = tmp_path / "pooled.json"
    seen = pgbouncer.clients_seen()
    for path, env in (
        (direct, {}),
        (pooled, {"DBTOOLS_TESTS_POSTGRES_HOST_PORT": pgbouncer.address}),
    ):
        done = run_manage(
            "backupdb", "--database", "postgresql", "--output", str(path), "--only", "shop", env=env
        )
        assert done.returncode == 0, done.stderr
    assert pgbouncer.clients_seen() > seen  # the pooled run really went through PgBouncer
    assert read_backup(pooled) == read_backup(direct)
    assert len(read_backup(pooled)["shop.UserActivity"]) > 5_000


def test_files_are_private_and_latest_holds_the_same_backup(alias, tmp_path, settings):
    folder = tmp_path / "new-folder"
    settings.DBTOOLS = {"BACKUP_DIR": str(folder)}
    seed_shop(200, using=alias)
    result = backup_database(using=alias)
    assert TIMESTAMPED.match(result.path.name)
    assert result.latest == folder / "db-backup-latest.json"
    assert result.latest.read_bytes() == result.path.read_bytes()
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(result.latest.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_compressed_backup_is_gzip_and_replaces_latest(alias, backup_dir):
    seed_shop(200, using=alias)
    plain = backup_database(using=alias)
    packed = backup_database(using=alias, compress="gzip")
    assert packed.path.name.endswith(".json.gz")
    assert json.loads(gzip.decompress(packed.path.read_bytes()))["summary"]["rows"] == plain.rows
    assert packed.latest == backup_dir / "db-backup-latest.json.gz"
    assert not (backup_dir / "db-backup-latest.json").exists()
    assert read_backup(packed.path) == read_backup(plain.path)


def test_output_file_name_ending_in_gz_compresses(alias, tmp_path):
    result = backup_database(using=alias, output=tmp_path / "mine.json.gz")
    assert result.path.read_bytes()[:2] == b"\x1f\x8b" and result.latest is None


def test_keep_prunes_older_backups_but_never_latest(alias, backup_dir):
    paths = [backup_database(using=alias).path for _ in range(4)]
    result = backup_database(using=alias, keep=2)
    remaining = sorted(p.name for p in backup_dir.iterdir() if TIMESTAMPED.match(p.name))
    assert remaining == sorted([paths[-1].name, result.path.name])
    assert sorted(result.pruned) == sorted(paths[:3])


def test_command_prints_summary_and_is_silent_at_verbosity_zero(alias, backup_dir):
    out = StringIO()
    call_command("backupdb", "--database", alias, stdout=out)
    text = out.getvalue()
    assert re.search(r"shop\.User\s+0 rows", text)
    assert re.search(r"Backed up \d+ rows from \d+ tables to .*db-backup-.*\.json", text)
    assert "Latest backup:" in text
    quiet = StringIO()
    call_command("backupdb", "--database", alias, verbosity=0, stdout=quiet, stderr=quiet)
    assert quiet.getvalue() == ""


def test_keep_below_one_is_refused(backup_dir):
    with pytest.raises(
        CommandError, match=r"^--keep must be a whole number of 1 or more, not 0\.$"
    ):
        call_command("backupdb", "--keep", "0")


def test_killed_backup_leaves_earlier_backups_intact(alias, backup_dir):
    seed_shop(60_000, using=alias)
    first = backup_database(using=alias)
    before = {p.name: p.read_bytes() for p in backup_dir.iterdir()}
    env = {"DBTOOLS_TESTS_BACKUP_DIR": str(backup_dir)}
    process = subprocess.Popen(
        manage_command("backupdb", "--database", alias),
        env=manage_env(env),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    partial = []
    while time.monotonic() < deadline and not partial:
        partial = [
            p for p in backup_dir.iterdir() if p.name.endswith(".partial") and p.stat().st_size > 0
        ]
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert partial, "the backup finished before it could be killed"
    after = {
        p.name: p.read_bytes() for p in backup_dir.iterdir() if not p.name.endswith(".partial")
    }
    assert after == before
    assert first.latest and first.latest.read_bytes() == first.path.read_bytes()
    listing = StringIO()
    call_command("listbackups", stdout=listing)
    assert "left by a backup that was interrupted; safe to delete." in listing.getvalue()


def test_full_disk_gives_a_clear_error_and_leaves_nothing(alias, backup_dir):
    seed_shop(5_000, using=alias)
    backup_database(using=alias)
    before = sorted(p.name for p in backup_dir.iterdir())
    import resource

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))

    done = run_manage(
        "backupdb",
        "--database",
        alias,
        env={"DBTOOLS_TESTS_BACKUP_DIR": str(backup_dir)},
        preexec_fn=small_files,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("CommandError: Writing db-backup-")
    assert "File too large. Nothing was kept; earlier backups are untouched." in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in backup_dir.iterdir()) == before


def test_output_folder_that_cannot_be_created_is_a_clear_error(alias, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(
        CommandError,
        match=r"Cannot create the backup folder .*a-file/sub: Not a directory\. Choose",
    ):
        call_command("backupdb", "--database", alias, "--output", str(blocker / "sub"))


def test_unreachable_database_is_one_line_without_the_password():
    done = run_manage(
        "backupdb",
        env={
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": "postgres://ada:s3cret@127.0.0.1:1/shop",
        },
    )
    assert done.returncode == 1
    assert done.stderr.startswith(
        "CommandError: Could not connect to the PostgreSQL database 'shop' (alias 'default'):"
    )
    assert "Check DATABASES[" in done.stderr and "s3cret" not in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1


def test_backup_folder_inside_git_but_not_ignored_is_flagged(alias, tmp_path, settings):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    settings.DBTOOLS = {"BACKUP_DIR": str(tmp_path / "dumps")}
    err = StringIO()
    call_command("backupdb", "--database", alias, stdout=StringIO(), stderr=err)
    assert "inside a git work tree and git does not ignore it" in err.getvalue()
    (tmp_path / ".gitignore").write_text("dumps/\n")
    err = StringIO()
    call_command("backupdb", "--database", alias, stdout=StringIO(), stderr=err)
    assert err.getvalue() == ""


@backends("postgresql")
def test_postgres_fast_path_writes_what_the_portable_path_writes(alias, backup_dir, monkeypatch):
    fill_edge_cases(alias)
    seed_shop(300, using=alias)
    fast = read_backup(backup_database(using=alias).path)
    monkeypatch.setattr("dbtools.backends.pg_reads.can_write", lambda table, connection: False)
    portable = read_backup(backup_database(using=alias).path)
    assert comparable_tables(fast) == comparable_tables(portable)


def write_by_hand(alias: str, sql: str, params: list[object]) -> None:
    connection = connections[alias]
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            cursor.execute("SET SESSION sql_mode = ''")  # lets a zero date in
        cursor.execute(sql, params)


@backends("sqlite", "mariadb")
def test_timestamps_and_uuids_read_as_text_are_written_as_django_reads_them(
    alias, backup_dir, monkeypatch
):
    from tests.edgecases import models as e

    fill_edge_cases(alias)
    seed_shop(300, using=alias)
    e.AllTypes.objects.using(alias).create(
        date_time=datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)  # no fraction
    )
    table = "edgecases_alltypes"
    by_hand = [
        # Text Django reads, in forms it never writes (SQLite keeps any text)
        ("2025-01-02T03:04:05", "12345678123456781234567812345678"),
        ("2025-01-02 03:04:05.123", "ABCDEF0123456789ABCDEF0123456789"),
        ("2025-01-02 03:04:05+02:00", "12345678-1234-5678-1234-567812345678"),
        ("not a time", "{12345678-1234-5678-1234-567812345678}"),
        ("2025-01-02 03:04:05.1234567", "ABCDEF01-2345-6789-ABCD-EF0123456789"),
    ]
    if connections[alias].vendor == "mysql":
        by_hand = [("0000-00-00 00:00:00", None)]  # MySQLdb reads a zero date as NULL
    ids = list(e.AllTypes.objects.using(alias).values_list("pk", flat=True))
    for pk, (stamp, uuid_text) in zip(ids, by_hand, strict=False):
        write_by_hand(
            alias,
            f"UPDATE {table} SET date_time = %s, uuid = COALESCE(%s, uuid) WHERE id = %s",
            [stamp, uuid_text, pk],
        )
    tables = plan_tables(alias).tables
    from dbtools.restore.text_reads import text_readers

    read_as_text = {t.label for t in tables if text_readers(t, connections[alias])}
    assert {"edgecases.AllTypes", "shop.Order", "shop.User"} <= read_as_text
    as_text = row_lines(backup_database(using=alias).path)
    monkeypatch.setattr("dbtools.backup.rows.text_readers", lambda table, connection: {})
    through_django = row_lines(backup_database(using=alias).path)
    assert as_text == through_django  # byte for byte
    stamps = {orjson.loads(line)["date_time"] for line in as_text["edgecases.AllTypes"]}
    assert {"2025-01-02T03:04:05+00:00", "2025-01-02T03:04:05.123456+00:00"} <= stamps


@backends("sqlite")
def test_timestamps_go_through_django_unless_it_reads_them_as_utc(alias, settings):
    from dbtools.restore.text_reads import text_readers

    connection = connections[alias]
    order = next(t for t in plan_tables(alias).tables if t.label == "shop.Order")
    read_as_text = {order.fields[i].name for i in text_readers(order, connection)}
    assert {"placed_at", "created_at", "updated_at", "shipping_address"} <= read_as_text
    settings.USE_TZ = False
    connection.__dict__.pop("timezone_name", None)
    try:
        read_as_text = {order.fields[i].name for i in text_readers(order, connection)}
    finally:
        connection.__dict__.pop("timezone_name", None)
    assert read_as_text == {"shipping_address"}  # the UUID only


def row_lines(path) -> dict[str, list[bytes]]:
    with ArchiveReader(path) as reader:
        return {
            section.meta["label"]: list(section.rows)
            for section in reader.tables(lambda meta: bytes)
        }


@backends("sqlite")
def test_a_stored_timestamp_that_is_no_date_names_its_row(alias, backup_dir):
    from tests.edgecases import models as e

    row = e.AllTypes.objects.using(alias).create()
    write_by_hand(
        alias,
        "UPDATE edgecases_alltypes SET date_time = %s WHERE id = %s",
        ["2025-13-45 03:04:05", row.pk],
    )
    with pytest.raises(
        BackupError, match=rf"edgecases.AllTypes .*primary key {row.pk}: .*month must be in 1..12"
    ):
        backup_database(using=alias)
    assert not list(backup_dir.glob("*.json"))


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal_and_not_at_verbosity_zero(alias, backup_dir):
    from dbtools.progress import ProgressBar

    assert ProgressBar.for_stream(StringIO(), verbosity=1) is None
    assert ProgressBar.for_stream(Terminal(), verbosity=0) is None
    screen = Terminal()
    bar = ProgressBar.for_stream(screen, verbosity=1)
    seed_shop(300, using=alias)
    backup_database(using=alias, only=["shop.UserActivity"], progress=bar)
    rows = m.UserActivity.objects.using(alias).count()
    assert "\r  shop.UserActivity" in screen.getvalue()
    assert screen.getvalue().endswith(f"[{'#' * 30}] {rows:>12,} / {rows:,}")


@backends("postgresql")
def test_helpers_are_optional_and_the_file_is_the_same_whatever_jobs_is(
    alias, backup_dir, monkeypatch
):
    from dbtools.backends.pg_reads import HelperReaders

    fill_edge_cases(alias)
    seed_shop(2_000, using=alias)
    spooled = []
    real_spool = HelperReaders.spool
    monkeypatch.setattr(
        HelperReaders,
        "spool",
        lambda self, table, c: spooled.append(table.label) or real_spool(self, table, c),
    )
    with_helper = backup_database(using=alias)
    assert spooled  # the second connection did read some tables
    assert not list(backup_dir.glob(".*.partial")) and not list(backup_dir.glob(".*.spool*"))
    spooled.clear()
    alone = backup_database(using=alias, jobs=1)
    assert spooled == [] and alone.warnings == []
    four = backup_database(using=alias, jobs=4)
    assert spooled

    def broken(self, table, connection):
        raise RuntimeError("the second connection failed")

    monkeypatch.setattr("dbtools.backends.pg_reads.HelperReaders.spool", broken)
    helpers_failed = backup_database(using=alias)
    body = alone.path.read_bytes().split(b"\n")[1:]  # the header differs: id and time
    for other in (with_helper, four, helpers_failed):
        assert other.path.read_bytes().split(b"\n")[1:] == body


@backends("postgresql")
def test_jobs_spread_tables_over_that_many_connections_in_one_snapshot(
    alias, backup_dir, monkeypatch
):
    """--jobs 3: two helpers besides the main connection each read tables, each
    on its own server process, and a row committed after the snapshot was
    exported is in no table of the backup, whichever connection read it."""
    from dbtools.backends.pg_reads import HelperReaders

    fill_edge_cases(alias)
    seed_shop(2_000, using=alias)
    before = comparable_tables(database_contents(alias))
    readers: dict[str, set[int]] = {}
    spooled: list[str] = []
    real_spool, real_run = HelperReaders.spool, HelperReaders.run
    written = threading.Lock()

    def watched(self, table, connection):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            readers.setdefault(threading.current_thread().name, set()).add(cursor.fetchone()[0])
        spooled.append(table.label)
        return real_spool(self, table, connection)

    def late_write_first(self):
        """After the snapshot is exported, before any helper has begun: another
        session empties the two tables the helpers take first, and commits."""
        if written.acquire(blocking=False):
            other = connections.create_connection(alias)
            try:
                other.set_autocommit(True)
                with other.cursor() as cursor:
                    cursor.execute("DELETE FROM shop_account")
                    cursor.execute("DELETE FROM shop_useractivity")
            finally:
                other.close()
        real_run(self)

    monkeypatch.setattr(HelperReaders, "spool", watched)
    monkeypatch.setattr(HelperReaders, "run", late_write_first)
    result = backup_database(using=alias, jobs=3)
    assert sorted(readers) == ["dbtools-reader-2", "dbtools-reader-3"]
    assert {"shop.Account", "shop.UserActivity"} <= set(spooled)
    assert m.Account.objects.using(alias).count() == 0  # the write did happen
    pids = [pid for found in readers.values() for pid in found]
    assert len(pids) == len(set(pids)) == 2  # one server process per helper
    assert comparable_tables(read_backup(result.path)) == before
    assert not [p for p in backup_dir.iterdir() if ".spool" in p.name]


@backends("postgresql")
def test_a_failing_helper_leaves_its_tables_to_the_others(alias, backup_dir, monkeypatch):
    """A helper that loses its connection mid-table: the main connection reads
    that table itself, and the other helper goes on."""
    from dbtools.backends.pg_reads import HelperReaders

    seed_shop(1_000, using=alias)
    finished: dict[str, list[str]] = {}
    lost = []
    real_spool = HelperReaders.spool

    def flaky(self, table, connection):
        name = threading.current_thread().name
        if name == "dbtools-reader-2":
            lost.append(table.label)
            connection.connection.close()  # the server connection goes away
        spooled = real_spool(self, table, connection)
        finished.setdefault(name, []).append(table.label)
        return spooled

    monkeypatch.setattr(HelperReaders, "spool", flaky)
    result = backup_database(using=alias, jobs=3)
    assert len(lost) == 1 and "dbtools-reader-2" not in finished
    assert finished["dbtools-reader-3"]
    assert comparable_tables(read_backup(result.path)) == comparable_tables(
        database_contents(alias)
    )
    assert not [p for p in backup_dir.iterdir() if ".spool" in p.name]


@backends("sqlite", "mariadb")
def test_jobs_where_no_snapshot_can_be_shared_says_so(alias, backup_dir):
    result = backup_database(using=alias, jobs=2)
    assert result.warnings == [
        f"--jobs 2 was not used: only PostgreSQL can share one snapshot between connections, "
        f"not {vendor_name(connections[alias])}; one connection read it all."
    ]
    assert backup_database(using=alias).warnings == []  # the default asks for nothing


@backends("sqlite")
def test_jobs_below_one_are_refused_before_anything_is_written(alias, backup_dir):
    with pytest.raises(ConfigurationError, match=r"^--jobs must be a whole number of 1 or more"):
        backup_database(using=alias, jobs=0)
    done = run_manage("backupdb", "--jobs", "0")
    assert done.returncode == 1
    assert "--jobs must be a whole number of 1 or more, not 0." in done.stderr
    assert not backup_dir.exists() or list(backup_dir.iterdir()) == []


@backends("sqlite")
def test_a_failing_project_check_does_not_stop_a_backup(alias, backup_dir, settings):
    """A backup is what people take when something is broken; dbtools' own
    settings are still checked."""
    from django.core import checks
    from django.core.checks.registry import registry

    def broken_admin(app_configs=None, **kwargs):
        return [checks.Error("the admin is misconfigured", id="project.E001")]

    checks.register(broken_admin, "project")
    try:
        with pytest.raises(SystemCheckError, match="misconfigured"):
            call_command("check", "--tag", "project")
        out = StringIO()
        call_command("backupdb", skip_checks=False, stdout=out)
        assert "Backed up" in out.getvalue()
        settings.DBTOOLS = {**settings.DBTOOLS, "KEEP": 0}
        with pytest.raises(SystemCheckError, match=r"dbtools.E001.*DBTOOLS\['KEEP'\] must be"):
            call_command("backupdb", skip_checks=False)
    finally:
        registry.registered_checks.discard(broken_admin)


def test_settings_problems_are_all_reported_at_once(settings):
    from dbtools.checks import check_settings

    settings.DBTOOLS = {"COMPRESS": "no", "EXCLUDE": "sessions", "KEEP": 0, "MAX_LINE_BYTES": 10}
    assert [(m.id, m.msg) for m in check_settings()] == [
        (
            "dbtools.E001",
            "DBTOOLS['EXCLUDE'] must be a list of app or model labels, such as ['sessions', "
            "'auth.Permission'], not 'sessions'.",
        ),
        ("dbtools.E001", "DBTOOLS['KEEP'] must be a whole number of 1 or more, not 0."),
        (
            "dbtools.E001",
            "DBTOOLS['COMPRESS'] must be 'zstd', 'gzip', True (zstd) or False, not 'no'.",
        ),
        (
            "dbtools.E001",
            "DBTOOLS['MAX_LINE_BYTES'] must be a whole number of bytes, at least 1,048,576, not 10.",
        ),
    ]
    with pytest.raises(ConfigurationError, match=r"^DBTOOLS\['EXCLUDE'\] must be a list"):
        backup_database()


def test_settings_exclude_naming_nothing_is_reported(settings):
    from dbtools.checks import check_settings

    settings.DBTOOLS = {"EXCLUDE": ["nosuchapp", "shop.Nope", "sessions"]}
    messages = [(m.id, m.msg.split(";")[0]) for m in check_settings()]
    assert messages == [
        ("dbtools.E002", "DBTOOLS['EXCLUDE']: Unknown app 'nosuchapp' in 'nosuchapp'"),
        ("dbtools.E002", "DBTOOLS['EXCLUDE']: Unknown model 'shop.Nope'"),
    ]


def test_exclude_can_name_an_auto_created_many_to_many_table(alias, backup_dir):
    result = backup_database(using=alias, only=["shop.User"], exclude=["shop.User_groups"])
    labels = [t.label for t in result.tables]
    assert "shop.User" in labels and "shop.User_user_permissions" in labels
    assert "shop.User_groups" not in labels


def test_compress_into_a_plain_json_name_is_refused(alias, tmp_path):
    with pytest.raises(
        ConfigurationError,
        match=r"^--compress gzip writes .json.gz, but two.json does not end so; name the file two.json.gz",
    ):
        backup_database(using=alias, output=tmp_path / "two.json", compress="gzip")
    assert not (tmp_path / "two.json").exists()


@backends("sqlite")
def test_keep_counts_full_backups_and_pre_migration_ones_apart(alias, backup_dir, settings):
    full = [backup_database(using=alias).path for _ in range(3)]
    partial = [backup_database(using=alias, only=["shop.Product"]).path for _ in range(2)]
    pre = [backup_database(using=alias, label="pre-migrate").path for _ in range(3)]

    newest = backup_database(using=alias, keep=2)

    assert sorted(newest.pruned) == sorted(full[:2])
    assert all(p.exists() for p in partial + pre + [full[2], newest.path])

    settings.DBTOOLS = {**settings.DBTOOLS, "KEEP": 5, "KEEP_PRE_MIGRATE": 1}
    latest_pre = backup_database(using=alias, label="pre-migrate")
    assert sorted(latest_pre.pruned) == sorted(pre)
    assert all(p.exists() for p in partial)


def test_version_is_dbtools_own():
    import dbtools

    for command in ("backupdb", "restoredb", "safemigrate", "listbackups"):
        done = run_manage(command, "--version")
        assert done.stdout.strip() == dbtools.__version__


def test_messages_name_no_demo_project(alias):
    """A reusable app's errors must not send a user to the demo's settings."""
    with pytest.raises(ConfigurationError) as raised:
        plan_tables(alias, only=["nope"])
    assert "'shop'" not in str(raised.value).split("installed apps are")[0]


@backends("postgresql")
def test_spool_files_are_private_unguessable_and_follow_no_link(
    alias, backup_dir, monkeypatch, tmp_path
):
    """The second PostgreSQL reader spools rows beside the backup: another local
    user must not read them, nor make the backup write through a planted link."""
    import os

    from dbtools.backends import pg_reads

    seed_shop(300, using=alias)
    backup_dir.mkdir(mode=0o755)
    victim = tmp_path / "victim"
    victim.write_text("root-only")
    for table in plan_tables(alias).tables:
        (backup_dir / f".dbtools-{os.getpid()}-{table.db_table}.spool.partial").symlink_to(victim)
    seen = []
    real_spool = pg_reads.HelperReaders.spool

    def watched(self, table, connection):
        spooled = real_spool(self, table, connection)
        seen.append((spooled.path.name, stat.S_IMODE(spooled.path.lstat().st_mode)))
        return spooled

    monkeypatch.setattr(pg_reads.HelperReaders, "spool", watched)
    old_umask = os.umask(0)
    try:
        backup_database(using=alias)
    finally:
        os.umask(old_umask)
    assert seen, "the helper readers spooled nothing"
    assert all(mode == 0o600 for _, mode in seen)
    assert not any(name.startswith(f".dbtools-{os.getpid()}-") for name, _ in seen)
    assert victim.read_text() == "root-only"
    assert not [p for p in backup_dir.iterdir() if ".spool" in p.name and not p.is_symlink()]


@pytest.mark.parametrize("micro", [0, 1, 10, 100, 1_000, 10_000, 16_179, 99_999, 100_000, 999_999])
def test_times_and_datetimes_keep_every_microsecond(micro):
    """orjson 3.13 wrote time(0, 19, 32, 16179) as "00:19:32.16179" (a tenth of
    a second off); the property tests found it. Every encoded value must parse
    back to itself."""
    from dbtools.archive.codec import decoder_for, encoder_for

    values = {
        "time": datetime.time(0, 19, 32, micro),
        "datetime": datetime.datetime(2020, 1, 1, 0, 19, 32, micro, tzinfo=datetime.UTC),
    }
    for kind, value in values.items():
        encode, decode = encoder_for(kind), decoder_for(kind)
        written = json.loads(orjson.dumps(encode(value) if encode else value))
        assert decode(written) == value, (kind, written)


def test_rows_become_dicts_under_any_field_name():
    from dbtools.backup.rows import dict_builder

    hostile = [
        "id",
        "a'b",
        'a"b',
        "\\",
        "}",
        "x'}); __import__('os').system('false'); ({'",
        "é",
        "line\nbreak",
        "\x00",
        "",
    ]
    row = list(range(len(hostile)))
    assert dict_builder(hostile)(row) == dict(zip(hostile, row, strict=True))
    wide = [f"c{i}" for i in range(3000)]
    assert dict_builder(wide)(list(range(3000))) == dict(zip(wide, range(3000), strict=True))
    assert dict_builder([])(()) == {}


def test_a_database_with_no_tables_is_refused_and_latest_is_untouched(alias, backup_dir):
    """A wrong DATABASE_URL, or a database never migrated: a backup of it would hold
    nothing, become `latest`, and every later restore or drill would fail."""
    from dbtools.restore.scratch import scratch_database

    seed_shop(20, using=alias)
    good = backup_database(using=alias)
    before = {p.name: p.read_bytes() for p in backup_dir.iterdir()}
    with scratch_database(connections[alias]) as empty:
        name = database_name(connections[empty.alias])
        message = (
            f"The {vendor_name(connections[alias])} database {name!r} (alias {empty.alias!r}) has "
            f"no tables: it was never migrated, or DATABASES points at another database than "
            f"you meant. Nothing was written. Run `manage.py migrate --database {empty.alias}` "
            f"first, or check DATABASES[{empty.alias!r}]."
        )
        with pytest.raises(BackupError) as raised:
            backup_database(using=empty.alias)
        assert str(raised.value) == message
        with pytest.raises(CommandError) as raised:
            call_command("backupdb", "--database", empty.alias, stdout=StringIO())
        assert str(raised.value) == message
    assert {p.name: p.read_bytes() for p in backup_dir.iterdir()} == before
    assert (backup_dir / "db-backup-latest.json").samefile(good.path)


@backends("sqlite")
def test_an_output_name_with_a_suffix_is_a_file_or_is_refused(
    alias, backup_dir, tmp_path, settings
):
    seed_shop(20, using=alias)
    for name in ("x.txt", "x.json.bak"):
        with pytest.raises(CommandError) as raised:
            call_command("backupdb", "--database", alias, "--output", str(tmp_path / name))
        assert str(raised.value) == (
            f"--output {tmp_path / name} names a file (its name has a suffix), but a backup "
            f"file's name ends in .json, .json.zst or .json.gz; name it x.json, or, for a "
            f"folder of that name, create it first."
        )
        assert not (tmp_path / name).exists()
    call_command(
        "backupdb", "--database", alias, "--output", str(tmp_path / "x.json.gz"), stdout=StringIO()
    )
    assert gzip.decompress((tmp_path / "x.json.gz").read_bytes())[:1] == b"{"
    (tmp_path / "dated.2026").mkdir()  # a folder that exists is a folder, dot or not
    call_command(
        "backupdb", "--database", alias, "--output", str(tmp_path / "dated.2026"), stdout=StringIO()
    )
    assert [p.name for p in (tmp_path / "dated.2026").iterdir() if TIMESTAMPED.match(p.name)]

    from tests.test_envelope import make_key

    settings.DBTOOLS = {**settings.DBTOOLS, "ENCRYPT_TO": [make_key(tmp_path).public]}
    with pytest.raises(ConfigurationError) as raised:
        backup_database(using=alias, output=tmp_path / "y.txt", compress="gzip")
    assert str(raised.value) == (
        f"--output {tmp_path / 'y.txt'} names a file (its name has a suffix), but a backup "
        f"file's name ends in .json.age, .json.zst.age or .json.gz.age; name it y.json.gz.age, "
        f"or, for a folder of that name, create it first."
    )
    assert not (tmp_path / "y.txt").exists()


@pytest.mark.parametrize(
    ("url", "vendor", "ending"),
    [
        ("postgres://ada:s3cret@127.0.0.1:1/shop", "PostgreSQL", r"accepting TCP/IP connections\?"),
        ("mysql://ada:s3cret@127.0.0.1:1/shop", "MySQL/MariaDB", r"\(\d+\)\"\)\."),
    ],
)  # fmt: skip
def test_a_refused_connection_is_two_sentences(url, vendor, ending):
    done = run_manage(
        "backupdb", env={"DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": url}
    )
    assert done.returncode == 1
    assert re.fullmatch(
        rf"CommandError: Could not connect to the {re.escape(vendor)} database 'shop' \(alias "
        rf"'default'\): .*{ending} Check DATABASES\['default'\] in the settings \(host, port, "
        rf"user, password, database name\) and that the server is running\.\n",
        done.stderr,
    ), done.stderr


@backends("postgresql")
def test_an_interrupt_while_a_batch_is_written_leaves_no_reader_thread(
    alias, backup_dir, monkeypatch
):
    """Ctrl-C lands while the table's row generator waits at its yield and
    its reader thread has filled the queue. The traceback holds the generator
    as long as the exception lives (a command's does until the process ends):
    the thread was left blocked in Queue.put, and the interpreter waited for
    it at exit, forever. The writer closes the generator itself now."""
    from dbtools.archive import ArchiveWriter
    from dbtools.backup import rows
    from dbtools.interrupts import told

    seed_shop(3_000, using=alias)
    monkeypatch.setattr(rows, "BATCH_ROWS", 10)
    original = ArchiveWriter.write_rows
    written = 0

    def write_rows(self, rows):
        nonlocal written
        original(self, rows)
        written += 1
        if written == 3:
            time.sleep(0.5)  # the reader fills the queue and waits to put the next batch
            raise KeyboardInterrupt

    monkeypatch.setattr(ArchiveWriter, "write_rows", write_rows)
    with pytest.raises(KeyboardInterrupt) as caught:
        backup_database(using=alias, jobs=1)
    assert [t.name for t in threading.enumerate() if t.name.startswith("dbtools-fetch-")] == []
    assert sorted(p.name for p in backup_dir.iterdir()) == []
    assert told(caught.value) == [
        "Nothing was kept (the unfinished backup was removed); earlier backups are untouched."
    ]
