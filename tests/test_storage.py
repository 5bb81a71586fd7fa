"""Backups in a storage of STORAGES: an S3 bucket on a real S3 server (moto's, over HTTP).

Each test gets a bucket of its own (the `s3` fixture). The commands run as a
user runs them, in a subprocess reading config/settings.py's DBTOOLS_S3_*
variables, except where a test needs to reach inside (part size, a failure
half-way).
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import time

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.files.storage import storages

from dbtools.backup import backup_database
from dbtools.exceptions import ArchiveError, BackupError, ConfigurationError
from dbtools.restore import prepare_restore, restore_database
from dbtools.storage import S3Store, StoredBackup, backup_location
from dbtools.storage.catalog import TIMESTAMPED, list_backups
from tests.conftest import ROOT, backends, free_port, manage_command, manage_env, run_manage
from tests.edgecases.models import Comment
from tests.helpers import comparable_tables, database_contents

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

MB = 1024 * 1024


def big_rows(alias: str, count: int, size: int = MB) -> None:
    """`count` rows of `size` random bytes of text: they do not compress, and make parts."""
    kind = ContentType.objects.db_manager(alias).get_for_model(Comment)
    Comment.objects.using(alias).bulk_create(
        Comment(content_type=kind, object_id=n, body=secrets.token_hex(size // 2))
        for n in range(count)
    )


def some_rows(alias: str) -> None:
    kind = ContentType.objects.db_manager(alias).get_for_model(Comment)
    Comment.objects.using(alias).bulk_create(
        Comment(content_type=kind, object_id=n, body=f"comment {n} ✓") for n in range(50)
    )


def timestamped(names: list[str]) -> list[str]:
    return [n for n in names if TIMESTAMPED.match(n)]


def test_backup_list_restore_keep_cycle_through_the_commands(alias, s3, tmp_path):
    some_rows(alias)
    before = comparable_tables(database_contents(alias))

    first = run_manage("backupdb", "--database", alias, env=s3.env, timeout=300)
    assert first.returncode == 0, first.stderr
    assert f"s3://{s3.bucket}/team/backups/db-backup-" in first.stdout
    second = run_manage("backupdb", "--database", alias, "--keep", "1", env=s3.env, timeout=300)
    assert second.returncode == 0, second.stderr
    names = s3.names()
    kept = timestamped(names)
    assert len(kept) == 1 and "db-backup-latest.json" in names, names
    assert "Deleted old backup s3://" in second.stdout
    assert not (tmp_path / "local-backups").exists()  # nothing went to local disk

    listed = run_manage("listbackups", "--verify", env=s3.env, timeout=300)
    assert listed.returncode == 0, listed.stderr
    assert f"Backups in s3://{s3.bucket}/team/backups/, newest first:" in listed.stdout
    assert re.search(rf"{kept[0]} .* verified <- latest", listed.stdout), listed.stdout

    Comment.objects.using(alias).filter(object_id__lt=10).delete()
    Comment.objects.using(alias).update(body="broken by a data script")
    restored = run_manage(
        "restoredb", "--database", alias, "--replace", "--no-input", "--file", kept[0], env=s3.env
    )
    assert restored.returncode == 0, restored.stderr
    assert f"Backup: s3://{s3.bucket}/team/backups/{kept[0]}" in restored.stdout
    assert comparable_tables(database_contents(alias)) == before

    # No --file: latest, which is a copy of the one kept.
    Comment.objects.using(alias).all().delete()
    again = run_manage("restoredb", "--database", alias, "--no-input", env=s3.env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert comparable_tables(database_contents(alias)) == before


@backends("sqlite", "postgresql")
def test_safemigrate_backs_up_to_the_bucket_and_rolls_back_from_it(alias, s3):
    from tests.test_safemigrate import Lab, safemigrate

    lab = Lab(alias)
    try:
        lab.migrate("0007")
        lab.add(name="explode", code="X", dimension="7", weight=1)
        before = comparable_tables(database_contents(alias))

        out, err, code = safemigrate(alias, "lab", "0008", "--rollback-on-failure")

        assert code == 2, err
        assert f"to s3://{s3.bucket}/team/backups/db-backup-pre-migrate-" in out
        assert "Rolled back: the schema of all " in out
        assert comparable_tables(database_contents(alias)) == before
        assert [n for n in s3.names() if n.startswith("db-backup-pre-migrate-")]
    finally:
        from django.db import connections

        with connections[alias].cursor() as cursor:
            cursor.execute("DELETE FROM lab_gadget")
        lab.migrate("0009_irreversible")


@backends("sqlite")
def test_a_large_backup_goes_up_in_several_parts_and_restores_exactly(alias, s3, monkeypatch):
    big_rows(alias, 14)
    before = comparable_tables(database_contents(alias))

    result = backup_database(using=alias)

    assert isinstance(result.path, StoredBackup)
    head = s3.client.head_object(
        Bucket=s3.bucket, Key=f"team/backups/{result.path.name}", PartNumber=1
    )
    assert head["PartsCount"] == 3  # 14 MB and more in parts of 5 MB
    assert result.size == result.path.size > 14 * MB
    assert s3.unfinished() == []
    # latest is a multipart server-side copy here (over 8 MB): it still says whose copy it is.
    latest = backup_location().get("db-backup-latest.json")
    assert latest is not None and latest.copy_of == result.path.name
    assert latest.size == result.size
    Comment.objects.using(alias).all().delete()
    restore_database(prepare_restore(using=alias), mode="merge")
    assert comparable_tables(database_contents(alias)) == before


@backends("sqlite")
def test_a_failure_half_way_aborts_the_upload_and_leaves_latest_alone(alias, s3, monkeypatch):
    some_rows(alias)
    first = backup_database(using=alias)
    big_rows(alias, 12)

    def fail_after_a_part(label: str, done: int, expected: int) -> None:
        if label == "edgecases.Comment" and done >= 12:
            raise RuntimeError("the machine went away")

    with pytest.raises(RuntimeError):
        backup_database(using=alias, progress=fail_after_a_part)

    assert timestamped(s3.names()) == [first.path.name]
    assert s3.unfinished() == []  # aborted, not left to be billed
    latest = backup_location().get("db-backup-latest.json")
    assert latest is not None and latest.copy_of == first.path.name


@backends("sqlite")
def test_a_backup_killed_half_way_leaves_no_object_that_looks_finished(alias, s3):
    some_rows(alias)
    assert run_manage("backupdb", "--database", alias, env=s3.env).returncode == 0
    finished_before = s3.names()
    big_rows(alias, 60)

    process = subprocess.Popen(
        manage_command("backupdb", "--database", alias),
        cwd=ROOT,
        env=manage_env(s3.env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    try:
        while not s3.unfinished():  # the upload has started: a part is on its way or there
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the upload never started"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)

    assert s3.names() == finished_before  # the killed backup is nowhere, latest unchanged
    assert len(s3.unfinished()) == 1
    listed = run_manage("listbackups", env=s3.env, timeout=300)
    assert listed.returncode == 0, listed.stderr
    assert "an upload that never completed (a backup was interrupted)" in listed.stdout
    assert listed.stdout.count("db-backup-2") == 2  # the one finished backup, and the upload


@backends("sqlite")
def test_a_restore_reads_the_object_it_checked_or_fails(alias, s3, monkeypatch):
    big_rows(alias, 3)
    first = backup_database(using=alias)
    Comment.objects.using(alias).update(body="changed")
    after_change = comparable_tables(database_contents(alias))
    plan = prepare_restore(first.path, using=alias)
    # Someone replaces the object between the check and the load.
    s3.client.put_object(Bucket=s3.bucket, Key=f"team/backups/{first.path.name}", Body=b"{}")

    with pytest.raises(ArchiveError, match="was replaced or deleted while it was being read"):
        restore_database(plan, mode="replace")
    assert comparable_tables(database_contents(alias)) == after_change


@backends("sqlite")
def test_a_missing_bucket_or_server_is_one_line_and_keeps_nothing(alias, s3, settings):
    storages_setting = settings.STORAGES
    storages_setting["backups"]["OPTIONS"]["bucket_name"] = "no-such-bucket-dbtools"
    settings.STORAGES = storages_setting
    with pytest.raises(
        BackupError,
        match=r"NoSuchBucket.*Check STORAGES\['backups'\].* Nothing was kept; earlier backups",
    ):
        backup_database(using=alias)

    env = {**s3.env, "DBTOOLS_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    down = run_manage("backupdb", "--database", alias, env=env, timeout=300)
    assert down.returncode == 1
    assert "Traceback" not in down.stderr
    assert "failed: Could not connect to the endpoint URL" in down.stderr
    listed = run_manage("listbackups", env=env, timeout=300)
    assert listed.returncode == 1 and "Traceback" not in listed.stderr


@backends("sqlite")
def test_a_storage_that_cannot_publish_atomically_is_refused(alias, settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "memory": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }
    settings.DBTOOLS = {"STORAGE": "memory"}
    with pytest.raises(ConfigurationError, match="InMemoryStorage; dbtools writes backups to a"):
        backup_database(using=alias)
    settings.DBTOOLS = {"STORAGE": "nowhere"}
    with pytest.raises(ConfigurationError, match=r"'nowhere', which settings\.STORAGES does not"):
        backup_database(using=alias)


@backends("sqlite")
def test_a_file_system_storage_is_its_folder(alias, settings, tmp_path):
    folder = tmp_path / "media-backups"
    settings.STORAGES = {
        **settings.STORAGES,
        "backups": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(folder)},
        },
    }
    settings.DBTOOLS = {"STORAGE": "backups", "BACKUP_DIR": str(tmp_path / "unused")}
    some_rows(alias)
    result = backup_database(using=alias)
    assert result.path.parent == folder
    assert (folder / "db-backup-latest.json").is_file()
    assert not (tmp_path / "unused").exists()
    assert [info.path for info in list_backups(backup_location())] == [result.path]


@backends("sqlite")
def test_names_outside_the_location_are_refused(alias, s3):
    store = backup_location()
    assert isinstance(store, S3Store)
    for name in ("../other/db-backup-latest.json", "sub/db-backup-latest.json"):
        with pytest.raises(ArchiveError, match=r"is not a backup name in|was not found"):
            restore_database(prepare_restore(name, using=alias), mode="merge")
    assert storages["backups"].bucket_name == s3.bucket


@backends("sqlite")
def test_an_encrypted_compressed_backup_round_trips_through_the_bucket(
    alias, s3, settings, tmp_path
):
    from tests.test_envelope import make_key

    key = make_key(tmp_path)
    settings.DBTOOLS = {
        **settings.DBTOOLS,
        "ENCRYPT_TO": [key.public],
        "IDENTITY": str(key.identity),
    }
    some_rows(alias)
    before = comparable_tables(database_contents(alias))
    result = backup_database(using=alias, compress="zstd")
    assert result.path.name.endswith(".json.zst.age")
    body = s3.client.get_object(Bucket=s3.bucket, Key=f"team/backups/{result.path.name}")["Body"]
    assert body.read(22) == b"age-encryption.org/v1\n"
    Comment.objects.using(alias).all().delete()
    restore_database(prepare_restore(using=alias), mode="merge")
    assert comparable_tables(database_contents(alias)) == before


def test_no_local_plaintext_is_written_on_the_way(alias, s3, tmp_path, monkeypatch):
    """The PostgreSQL helper readers spool to local disk; with a bucket they must not run."""
    some_rows(alias)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    backup_database(using=alias)
    assert os.listdir(tmp_path / "tmp") == []
    assert not (tmp_path / "local-backups").exists()


@backends("sqlite")
def test_a_public_acl_is_refused_before_anything_is_written(alias, s3, settings):
    storages_setting = settings.STORAGES
    storages_setting["backups"]["OPTIONS"]["default_acl"] = "public-read"
    settings.STORAGES = storages_setting
    with pytest.raises(ConfigurationError, match="would be readable by others"):
        backup_database(using=alias)
    assert s3.names() == [] and s3.unfinished() == []


@backends("sqlite", "postgresql")
def test_a_drill_restores_a_backup_from_the_bucket(alias, s3):
    from dbtools.restore.drill import drill

    some_rows(alias)
    run = run_manage("backupdb", "--database", alias, env=s3.env, timeout=300)
    assert run.returncode == 0, run.stderr
    drilled = run_manage("listbackups", "--drill", "--database", alias, env=s3.env, timeout=300)
    assert drilled.returncode == 0, drilled.stderr
    assert "Drill passed: " in drilled.stdout and "checksum matches the backup's" in drilled.stdout
    result = drill(None, using=alias)
    assert result.ok and isinstance(result.path, StoredBackup)


@backends("sqlite")
def test_a_folder_the_site_serves_is_warned_about(alias, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    }
    settings.DBTOOLS = {"STORAGE": "default"}  # plausible, and wrong: MEDIA_ROOT is public
    some_rows(alias)
    result = backup_database(using=alias)
    assert result.path.parent == tmp_path / "media"
    assert any(
        "is inside MEDIA_ROOT" in w and "which the site serves" in w for w in result.warnings
    )


@backends("sqlite")
def test_latest_whose_timestamped_object_is_gone_is_listed(alias, s3):
    from io import StringIO

    from django.core.management import call_command
    from django.db import connections

    from dbtools.backends import database_name

    some_rows(alias)
    result = backup_database(using=alias)
    s3.client.delete_object(Bucket=s3.bucket, Key=f"team/backups/{result.path.name}")
    assert s3.names() == ["db-backup-latest.json"]
    out = StringIO()
    call_command("listbackups", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == f"Backups in s3://{s3.bucket}/team/backups/, newest first:"
    assert lines[1].startswith("  db-backup-latest.json  ")
    assert lines[1].endswith(
        f"{len(result.tables)} tables  {result.rows:,} rows  sqlite:{database_name(connections[alias])}"
        " <- latest (the timestamped backup it is a copy of is gone)"
    )


@backends("sqlite")
def test_a_password_in_the_endpoint_url_is_never_printed(alias, s3, settings):
    port = free_port()
    storages_setting = settings.STORAGES
    storages_setting["backups"]["OPTIONS"]["endpoint_url"] = f"http://ada:s3cret@127.0.0.1:{port}"
    settings.STORAGES = storages_setting
    with pytest.raises(BackupError) as raised:
        backup_database(using=alias)
    message = str(raised.value)
    assert "s3cret" not in message
    assert message.startswith("Uploading db-backup-")
    assert (
        f'failed: Could not connect to the endpoint URL: "http://ada:***@127.0.0.1:{port}/'
        in message
    )


@backends("sqlite")
def test_an_upload_without_credentials_says_uploading(alias, s3, settings, monkeypatch, tmp_path):
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(variable)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings.STORAGES = {**settings.STORAGES}  # a new storage, with a new session
    with pytest.raises(BackupError) as raised:
        backup_database(using=alias)
    assert re.fullmatch(
        rf"Uploading db-backup-\S+\.json to s3://{s3.bucket}/team/backups/ "
        r"failed: Unable to locate credentials\. Check STORAGES\['backups'\] \(bucket, "
        r"endpoint_url, credentials\) and that the server is reachable\. Nothing was kept; "
        r"earlier backups are untouched\.",
        str(raised.value),
    ), str(raised.value)
    assert s3.names() == [] and s3.unfinished() == []
