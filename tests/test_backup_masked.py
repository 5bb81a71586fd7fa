"""backupdb --mask: no original value of a masked field reaches the file, a spool, a
temporary file or an upload; the copy restores, deterministic per key; it says it is masked."""

from __future__ import annotations

import gzip
import tempfile
import threading
import time
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import zstandard
from django.contrib.sessions.models import Session as DjangoSession
from django.core.management import CommandError, call_command
from django.core.validators import validate_email
from django.db import connections
from hypothesis import given
from pyrage import decrypt, x25519

from dbtools.archive import ArchiveReader
from dbtools.archive.envelope import AGE_MAGIC, GZIP_MAGIC, ZSTD_MAGIC
from dbtools.backends import pg_reads
from dbtools.backup import backup_database
from dbtools.backup.masked import MaskedTables
from dbtools.exceptions import ConfigurationError, MigrationError, RestoreError
from dbtools.graph import plan_tables
from dbtools.management.commands import restoredb
from dbtools.masking import Masker
from dbtools.migrate.rollback import rollback
from dbtools.restore import prepare_restore, replay, restore_database
from dbtools.restore.replay import replay_restore
from shop import models as m
from shop.seed import seed_shop
from tests.conftest import backends
from tests.data import fill_edge_cases
from tests.edgecases import models as e
from tests.helpers import comparable_tables, database_contents, read_backup
from tests.test_backup import row_lines
from tests.test_masking import KEY, OTHER_KEY, SHOP_RULES
from tests.test_properties import PROPERTY_SETTINGS, all_types_rows

# The engine's own shop rules, with a phone number and a dropped table.
RULES: dict[str, Any] = {**SHOP_RULES, "shop.Address.line2": "phone", "shop.Session": "drop"}
# The masked columns whose original values the leak tests search for.
MASKED_COLUMNS = {
    m.User: ["email", "first_name", "last_name", "password"],
    m.Order: ["email"],
    m.NewsletterSubscriber: ["email"],
    m.Address: ["full_name", "line1", "line2", "city", "postal_code"],
    m.UserActivity: ["ip_address"],
}


@pytest.fixture
def masking(backup_dir, settings):  # type: ignore[no-untyped-def]
    settings.DBTOOLS = {**settings.DBTOOLS, "MASK": RULES, "MASK_KEY": KEY}
    return backup_dir


def seed_customers(alias: str) -> list[str]:
    """The shop, with personal values no masking rule can give, and the same
    customers' emails in User, Order and NewsletterSubscriber. Returns every
    original value of every masked field."""
    seed_shop(500, using=alias)
    db = alias
    users = list(m.User.objects.using(db).order_by("id"))
    for user in users:
        user.first_name, user.last_name = f"Ottoline{user.id}", f"Quillfeather{user.id}"
        user.password = f"pbkdf2_sha256$870000$salt{user.id}$secrethash{user.id}"
    m.User.objects.using(db).bulk_update(users, ["first_name", "last_name", "password"])
    emails = {user.id: user.email for user in users}
    orders = list(m.Order.objects.using(db).exclude(user_id=None))
    for order in orders:
        order.email = emails[order.user_id]  # the same customer, in another table
    m.Order.objects.using(db).bulk_update(orders, ["email"])
    subscribers = list(m.NewsletterSubscriber.objects.using(db).order_by("id"))
    for subscriber, email in zip(subscribers, emails.values(), strict=False):
        subscriber.email = email
    m.NewsletterSubscriber.objects.using(db).bulk_update(subscribers, ["email"])
    addresses = list(m.Address.objects.using(db).order_by("id"))
    for i, address in enumerate(addresses, 1):
        address.full_name = f"Ottoline Addressee{i}"
        address.line1 = f"{i} Quillfeather Mews"
        address.line2 = f"+44 20 7946 {i:04d}"
        address.city = f"Porthkerris{i}"
    m.Address.objects.using(db).bulk_update(addresses, ["full_name", "line1", "line2", "city"])
    activities = list(m.UserActivity.objects.using(db).order_by("id"))
    for activity in activities:
        activity.ip_address = f"203.0.113.{activity.id % 250 + 1}"
        activity.payload = {"path": f"/account/ottoline-{activity.id}/orders", "ms": 5}
    m.UserActivity.objects.using(db).bulk_update(activities, ["ip_address", "payload"])
    originals = [
        value
        for model, columns in MASKED_COLUMNS.items()
        for column in columns
        for value in model.objects.using(db).values_list(column, flat=True)
        if value
    ]
    originals += [a.payload["path"] for a in activities]
    originals += [s.session_token for s in m.Session.objects.using(db).all()]
    assert len(originals) > 500
    return originals


def decoded(data: bytes, identity: Any = None) -> bytes:
    """A backup file's document: decrypted, then decompressed."""
    if data.startswith(AGE_MAGIC):
        data = decrypt(data, [identity])
    if data.startswith(GZIP_MAGIC):
        return gzip.decompress(data)
    if data.startswith(ZSTD_MAGIC):
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def leaked(data: bytes, originals: list[str]) -> list[str]:
    return [value for value in originals if value.encode() in data]


def masked_meta(path: Any) -> dict[str, Any]:
    with ArchiveReader(path) as reader:
        return reader.meta


def email_of(tables: dict[str, list[dict[str, Any]]], label: str) -> dict[Any, str]:
    return {row["id"]: row["email"] for row in tables[label]}


# Nothing unmasked reaches the file


def test_no_original_value_is_in_the_masked_file(alias, masking):
    originals = seed_customers(alias)
    plain = backup_database(using=alias)
    assert len(leaked(plain.path.read_bytes(), originals)) == len(originals)  # the search works
    masked = backup_database(using=alias, mask=True)
    data = masked.path.read_bytes()
    assert leaked(data, originals) == []
    tables = read_backup(masked.path)
    assert tables["shop.Session"] == []  # "drop": listed, with no rows
    assert len(tables["shop.User"]) == m.User.objects.using(alias).count()
    for email in email_of(tables, "shop.User").values():
        validate_email(email)


@pytest.mark.parametrize("envelope", ["gzip", "zstd", "age", "zstd+age"])
def test_no_original_value_is_in_a_compressed_or_encrypted_masked_file(
    alias, masking, settings, envelope
):
    originals = seed_customers(alias)
    identity = x25519.Identity.generate()
    if "age" in envelope:
        settings.DBTOOLS = {**settings.DBTOOLS, "ENCRYPT_TO": [str(identity.to_public())]}
    compress = envelope.split("+")[0] if envelope != "age" else False
    result = backup_database(using=alias, mask=True, compress=compress)
    raw = result.path.read_bytes()
    document = decoded(raw, identity)
    assert document.startswith(b'{"format":"dbtools-backup"') and document != raw
    assert b'"masked":true' in document
    assert leaked(document, originals) == []
    assert len(document) > 10_000  # the rows are there, masked


def test_no_original_value_in_any_file_left_in_the_temporary_or_backup_folder(
    alias, masking, monkeypatch, tmp_path
):
    originals = seed_customers(alias)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    backup_database(using=alias, mask=True, compress="gzip")
    backup_database(using=alias, mask=True, output=masking / "mine.json")
    files = [p for folder in (scratch, masking) for p in folder.rglob("*") if p.is_file()]
    assert len(files) == 2
    for path in files:
        assert leaked(decoded(path.read_bytes()), originals) == [], path.name


@backends("postgresql")
def test_postgresql_masked_tables_never_take_the_server_path_nor_a_spool(
    alias, masking, monkeypatch
):
    """The server writes (and helper connections spool) only tables with nothing masked."""
    originals = seed_customers(alias)
    served: list[str] = []
    spooled: list[bytes] = []
    row_batches, spool = pg_reads.row_batches, pg_reads.HelperReaders.spool

    def watched_batches(table, connection, size, keys=None):  # type: ignore[no-untyped-def]
        served.append(table.label)
        return row_batches(table, connection, size, keys)

    def watched_spool(self, table, connection):  # type: ignore[no-untyped-def]
        result = spool(self, table, connection)
        served.append(table.label)
        spooled.append(result.path.read_bytes())
        return result

    monkeypatch.setattr(pg_reads, "row_batches", watched_batches)
    monkeypatch.setattr(pg_reads.HelperReaders, "spool", watched_spool)
    result = backup_database(using=alias, mask=True, jobs=3)
    masked_labels = {"shop.User", "shop.Order", "shop.NewsletterSubscriber", "shop.Address"}
    masked_labels |= {"shop.UserActivity", "shop.Subscription", "shop.Session"}
    assert not masked_labels & set(served)
    assert {"shop.Product", "shop.OrderItem"} <= set(served)  # unmasked keep the fast path
    assert spooled  # helpers did read, just not the masked tables
    assert leaked(b"".join(spooled), originals) == []
    assert leaked(result.path.read_bytes(), originals) == []


def test_a_masked_backup_to_a_bucket_holds_no_original_value(alias, s3, settings):
    originals = seed_customers(alias)
    settings.DBTOOLS = {**settings.DBTOOLS, "MASK": RULES, "MASK_KEY": KEY}
    result = backup_database(using=alias, mask=True, compress="zstd")
    with result.path.open_stream() as stream:
        data = stream.read()
    assert leaked(decoded(data), originals) == []
    names = s3.names()
    assert len(names) == 1 and names[0].startswith("db-backup-masked-")  # no `latest` copy
    assert not Path(settings.DBTOOLS["BACKUP_DIR"]).exists()


# The copy restores, deterministically


def test_the_masked_backup_restores_into_a_fresh_database_with_its_constraints(alias, masking):
    seed_customers(alias)
    users_before = {u.id: u for u in m.User.objects.using(alias).all()}
    started = dict(m.Subscription.objects.using(alias).values_list("id", "started_at"))
    result = backup_database(using=alias, mask=True)
    call_command("flush", database=alias, interactive=False, verbosity=0)
    restored = restore_database(prepare_restore(result.path, using=alias), mode="replace")
    assert restored.inserted == result.rows
    connections[alias].check_constraints()
    users = list(m.User.objects.using(alias).all())
    assert len({u.email for u in users}) == len(users) == len(users_before)
    for user in users:
        before = users_before[user.id]
        assert (user.email, user.first_name, user.last_name) != (
            before.email,
            before.first_name,
            before.last_name,
        )
        assert not user.has_usable_password()
    emails = {u.id: u.email for u in users}
    for order in m.Order.objects.using(alias).exclude(user_id=None):
        assert order.email == emails[order.user_id]  # the same customer, the same fake
    subscribers = set(m.NewsletterSubscriber.objects.using(alias).values_list("email", flat=True))
    assert set(emails.values()) & subscribers
    assert not m.Session.objects.using(alias).exists()
    for sub_id, when in m.Subscription.objects.using(alias).values_list("id", "started_at"):
        shift = abs((when - started[sub_id]).total_seconds())
        assert 0 < shift <= 30 * 86_400
    # New rows still fit: the sequences were reset past the restored ids.
    m.User.objects.using(alias).create(username="after", email="after@example.com")


def test_the_same_input_gives_the_same_output_across_runs_and_another_key_others(
    alias, masking, settings
):
    seed_customers(alias)
    first = read_backup(backup_database(using=alias, mask=True).path)
    second = read_backup(backup_database(using=alias, mask=True).path)
    assert first == second
    settings.DBTOOLS = {**settings.DBTOOLS, "MASK_KEY": OTHER_KEY}
    other = read_backup(backup_database(using=alias, mask=True).path)
    for label in ("shop.User", "shop.Order", "shop.NewsletterSubscriber"):
        ours, theirs = email_of(first, label), email_of(other, label)
        assert ours.keys() == theirs.keys()
        assert not set(ours.values()) & set(theirs.values())
    assert first["shop.Product"] == other["shop.Product"]  # nothing masked there


# It says it is masked


def test_the_header_records_masked_and_the_fingerprint_never_the_key(alias, masking):
    seed_shop(100, using=alias)
    result = backup_database(using=alias, mask=True)
    meta = masked_meta(result.path)
    assert meta["masked"] is True
    assert meta["mask_fingerprint"] == Masker(RULES, KEY).fingerprint
    data = result.path.read_bytes()
    assert KEY.encode() not in data and b"MASK_KEY" not in data
    assert "masked" not in masked_meta(backup_database(using=alias).path)


def test_a_masked_backup_is_named_so_never_latest_and_never_pruned(alias, masking):
    seed_shop(100, using=alias)
    plain = backup_database(using=alias)
    masked = backup_database(using=alias, mask=True)
    assert masked.path.name.startswith("db-backup-masked-") and masked.latest is None
    assert (masking / "db-backup-latest.json").read_bytes() == plain.path.read_bytes()
    pruned = backup_database(using=alias, keep=1).pruned
    assert pruned == [plain.path] and masked.path.exists()
    with pytest.raises(ConfigurationError, match=r"^--keep deletes old full backups"):
        backup_database(using=alias, mask=True, keep=1)


def test_backupdb_mask_and_listbackups_show_it(alias, masking):
    seed_shop(100, using=alias)
    call_command("backupdb", database=alias, verbosity=0)
    out = StringIO()
    call_command("backupdb", "--mask", database=alias, stdout=out)
    fingerprint = Masker(RULES, KEY).fingerprint
    assert f"Masked by DBTOOLS['MASK'] (rules {fingerprint[:12]})" in out.getvalue()
    assert "Latest backup" not in out.getvalue()
    listing = StringIO()
    call_command("listbackups", stdout=listing)
    lines = [line for line in listing.getvalue().splitlines() if "db-backup-" in line]
    assert len(lines) == 2
    masked_line = next(line for line in lines if "db-backup-masked-" in line)
    plain_line = next(line for line in lines if "db-backup-masked-" not in line)
    assert f"{connections[alias].vendor}:" in masked_line and "  masked" in masked_line
    assert "masked" not in plain_line and plain_line.endswith("<- latest")


def test_restoredb_says_the_backup_is_masked_before_it_writes(alias, masking, monkeypatch):
    seed_shop(100, using=alias)
    result = backup_database(using=alias, mask=True)
    err = StringIO()
    said_before: list[bool] = []
    restore = restoredb.restore_database

    def watched(*args, **kwargs):  # type: ignore[no-untyped-def]
        said_before.append("NOTICE: This backup is masked" in err.getvalue())
        return restore(*args, **kwargs)

    monkeypatch.setattr(restoredb, "restore_database", watched)
    call_command("flush", database=alias, interactive=False, verbosity=0)
    call_command(
        "restoredb", "--replace", "--no-input", "--file", str(result.path),
        database=alias, stdout=StringIO(), stderr=err, verbosity=0,
    )  # fmt: skip
    assert said_before == [True]
    fingerprint = Masker(RULES, KEY).fingerprint
    assert (
        f"NOTICE: This backup is masked (rules {fingerprint[:12]}): its personal fields hold "
        f"fake values made by DBTOOLS['MASK'], not the data of the database it was taken from."
    ) in err.getvalue()
    plain = backup_database(using=alias)
    err = StringIO()
    call_command(
        "restoredb", "--replace", "--no-input", "--file", str(plain.path),
        database=alias, stdout=StringIO(), stderr=err, verbosity=0,
    )  # fmt: skip
    assert "masked" not in err.getvalue()


@pytest.mark.parametrize("mode", ["overwrite", "replace"])
def test_a_masked_backup_never_overwrites_rows_a_database_holds(alias, masking, mode):
    seed_shop(100, using=alias)
    result = backup_database(using=alias, mask=True)
    before = database_contents(alias, ["shop.User", "shop.Order"])
    with pytest.raises(RestoreError) as caught:
        restore_database(prepare_restore(result.path, using=alias), mode=mode)
    assert str(caught.value).startswith(
        f"{result.path.name} is a masked backup (holds fake personal values): --{mode} would "
    )
    assert "manage.py flush" in str(caught.value) and caught.value.changed is False
    assert database_contents(alias, ["shop.User", "shop.Order"]) == before
    err = StringIO()
    with pytest.raises(CommandError, match="is a masked backup"):
        call_command(
            "restoredb", f"--{mode}", "--no-input", "--file", str(result.path),
            database=alias, stdout=StringIO(), stderr=err, verbosity=0,
        )  # fmt: skip
    assert database_contents(alias, ["shop.User", "shop.Order"]) == before
    call_command("flush", database=alias, interactive=False, verbosity=0)
    restore_database(prepare_restore(result.path, using=alias), mode=mode)
    assert m.User.objects.using(alias).count() == len(read_backup(result.path)["shop.User"])


@pytest.mark.parametrize("mode", ["overwrite", "replace"])
def test_a_replay_never_overwrites_rows_with_a_masked_backup(alias, masking, mode, monkeypatch):
    """The replay restores from a file it carried forward itself: the refusal
    goes by the file the user named, with the direct route's message, before
    the scratch database is made."""

    def carry_forward(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the refusal comes before the rows are carried forward")

    monkeypatch.setattr(replay, "carry_forward", carry_forward)
    seed_shop(100, using=alias)
    result = backup_database(using=alias, mask=True)
    before = database_contents(alias, ["shop.User", "shop.Order"])
    with pytest.raises(RestoreError) as caught:
        replay_restore(result.path, using=alias, mode=mode)
    assert str(caught.value).startswith(
        f"{result.path.name} is a masked backup (holds fake personal values): --{mode} would "
    )
    assert "manage.py flush" in str(caught.value) and caught.value.changed is False
    with pytest.raises(CommandError, match=f"{result.path.name} is a masked backup"):
        call_command(
            "restoredb", f"--{mode}", "--replay", "--no-input", "--file", str(result.path),
            database=alias, stdout=StringIO(), stderr=StringIO(), verbosity=0,
        )  # fmt: skip
    assert database_contents(alias, ["shop.User", "shop.Order"]) == before


@pytest.fixture
def lab_behind(alias, backup_dir):  # type: ignore[no-untyped-def]
    """lab at 0001: its gadget's `dimension` is still `size` in the database."""
    from tests.test_safemigrate import LAST, Lab

    lab = Lab(alias)
    lab.migrate("0001")
    lab.add(name="g1", size=424242)
    yield lab
    lab.migrate("0001")  # a test may have taken it to zero
    with connections[alias].cursor() as cursor:
        cursor.execute("DELETE FROM lab_gadget")
    lab.migrate(LAST)


@pytest.mark.parametrize(
    ("rules", "named"),
    [({"lab.Gadget.dimension": "hash"}, "lab.Gadget.dimension"), ({"lab.Gadget": "drop"}, None)],
)
def test_mask_refuses_rules_the_database_behind_the_code_does_not_have(
    alias, lab_behind, backup_dir, settings, rules, named
):
    """A pending RenameField: the backup reads `size`, the rule names `dimension`."""
    if named is None:
        lab_behind.migrate("zero")  # no table at all yet: a drop rule would keep nothing out
        named = "lab.Gadget"
    settings.DBTOOLS = {**settings.DBTOOLS, "MASK": rules, "MASK_KEY": KEY}
    with pytest.raises(ConfigurationError) as raised:
        backup_database(using=alias, mask=True)
    assert str(raised.value) == (
        f"DBTOOLS['MASK'] names {named}, which the database {alias!r} does not have as its "
        f"applied migrations leave it (they are behind or ahead of the code), so the backup would "
        f"hold their values in clear; nothing was changed; migrate the database (`manage.py "
        f"migrate`) or back it up from the code that matches it."
    )
    with pytest.raises(CommandError, match=r"^DBTOOLS\['MASK'\] names "):
        call_command("backupdb", "--mask", database=alias, stdout=StringIO(), stderr=StringIO())
    assert list(backup_dir.glob("**/*")) == []


def test_safemigrate_rollback_refuses_a_masked_backup(alias, masking):
    seed_shop(100, using=alias)
    result = backup_database(using=alias, mask=True)
    users = m.User.objects.using(alias).count()
    with pytest.raises(MigrationError) as raised:
        rollback(result.path, alias, None)
    assert str(raised.value) == (
        f"The backup {result.path.name} cannot be used for a rollback: it is a masked backup "
        f"(backupdb --mask), whose personal fields hold fake values. Nothing was rolled back. "
        f"Roll back from a whole, unmasked backup, such as the pre-migrate backup safemigrate took."
    )
    assert m.User.objects.using(alias).count() == users


# Errors


def test_error_for_mask_without_rules(alias, backup_dir):
    with pytest.raises(CommandError) as raised:
        call_command("backupdb", "--mask", database=alias, verbosity=0)
    assert str(raised.value) == (
        "--mask needs masking rules, and DBTOOLS['MASK'] is not set. Nothing was changed; "
        "add them, with DBTOOLS['MASK_KEY'], as docs/masking.md shows."
    )
    assert not backup_dir.exists() or not list(backup_dir.iterdir())


def test_error_for_mask_without_a_key(alias, backup_dir, settings):
    settings.DBTOOLS = {**settings.DBTOOLS, "MASK": RULES}
    with pytest.raises(CommandError) as raised:
        call_command("backupdb", "--mask", database=alias, verbosity=0)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("DBTOOLS['MASK'] is set but DBTOOLS['MASK_KEY'] is not;")
    assert not backup_dir.exists() or not list(backup_dir.iterdir())


@backends("sqlite")
def test_a_masked_table_list_leaves_the_others_to_the_server(alias):
    plan = plan_tables(alias)
    unmasked = MaskedTables(Masker(RULES, KEY)).unmasked(plan).labels()
    assert "shop.Product" in unmasked and "shop.Session" not in unmasked
    assert "shop.User" not in unmasked and "shop.User_groups" in unmasked
    assert DjangoSession._meta.label in unmasked  # only shop.Session is dropped


def test_a_masked_subset_holds_no_original_value_and_restores(alias, masking):
    originals = seed_customers(alias)
    chosen = list(m.User.objects.using(alias).order_by("pk").values_list("pk", flat=True)[:20])
    result = backup_database(
        using=alias, mask=True, subset=[f"shop.User:pk__in={','.join(map(str, chosen))}"],
        with_children=True,
    )  # fmt: skip
    assert "subset" in result.path.name and "masked" in result.path.name
    assert leaked(decoded(result.path.read_bytes()), originals) == []
    meta = masked_meta(result.path)
    assert meta["masked"] is True and meta["subset"]
    tables = read_backup(result.path)
    assert sorted(row["id"] for row in tables["shop.User"]) == sorted(chosen)
    call_command("flush", database=alias, interactive=False, verbosity=0)
    restore_database(prepare_restore(result.path, using=alias))
    connections[alias].check_constraints()
    emails = dict(m.User.objects.using(alias).values_list("id", "email"))
    assert sorted(emails) == sorted(chosen)
    for order in m.Order.objects.using(alias).exclude(user_id=None):
        assert order.email == emails[order.user_id]  # masked alike, and inside the subset


def test_a_masked_subset_records_its_lookups_without_their_values(alias, masking):
    seed_customers(alias)
    email = m.User.objects.using(alias).order_by("pk").values_list("email", flat=True)[0]
    call_command(
        "backupdb", "--mask", "--subset", f"shop.User:email={email}", database=alias,
        stdout=StringIO(),
    )  # fmt: skip
    path = next(masking.glob("db-backup-subset-masked-*"))
    assert email.encode() not in decoded(path.read_bytes())
    assert masked_meta(path)["subset"]["subset"] == ["shop.User:email=<redacted>"]
    assert len(read_backup(path)["shop.User"]) == 1
    listing = StringIO()
    call_command("listbackups", stdout=listing)
    assert "--subset 'shop.User:email=<redacted>'" in listing.getvalue()
    assert email not in listing.getvalue()


# The server writes the unmasked columns of a masked table (PostgreSQL)


def unchanged(value: Any, context: Any) -> Any:
    """A rule that masks nothing: the masked path's lines must be the plain backup's."""
    return value


UNCHANGED = "tests.test_backup_masked.unchanged"
SHOP_TEXT_COLUMNS = [
    ("shop.User", "email"),
    ("shop.User", "first_name"),
    ("shop.Order", "email"),
    ("shop.Order", "notes"),
    ("shop.Address", "line1"),
    ("shop.Address", "postal_code"),
    ("shop.NewsletterSubscriber", "email"),
    ("shop.UserActivity", "ip_address"),  # inet on PostgreSQL
]
# Masked text columns alone, side by side, and last; around them every other kind.
ALL_TYPES_UNCHANGED = {
    f"edgecases.AllTypes.{name}": UNCHANGED
    for name in ("char", "email", "file", "file_path", "slug", "text", "url")
}


def lines_masked_and_plain(alias: str, only: list[str]) -> tuple[dict, dict]:
    masked = row_lines(backup_database(using=alias, mask=True, only=only).path)
    return masked, row_lines(backup_database(using=alias, only=only).path)


def test_a_rule_that_changes_nothing_gives_the_plain_backups_lines_byte_for_byte(
    alias, masking, settings
):
    fill_edge_cases(alias)
    seed_customers(alias)
    awkward = "".join(chr(c) for c in range(1, 32)) + '"\\\x7f\u2028\u2029\ufeff🚀'
    row = e.AllTypes.objects.using(alias).create(char=awkward, text="é", url="")
    table = connections[alias].ops.quote_name(e.AllTypes._meta.db_table)
    with connections[alias].cursor() as cursor:  # JSON null, a value: the row names it
        cursor.execute(f"UPDATE {table} SET json = 'null' WHERE id = %s", [row.pk])
    rules = {f"{label}.{column}": UNCHANGED for label, column in SHOP_TEXT_COLUMNS}
    settings.DBTOOLS = {**settings.DBTOOLS, "MASK": {**rules, **ALL_TYPES_UNCHANGED}}
    only = ["edgecases.AllTypes", *{label for label, _ in SHOP_TEXT_COLUMNS}]
    masked, plain = lines_masked_and_plain(alias, only)
    assert sum(len(lines) for lines in masked.values()) > 200
    assert b'"$json_null":["json"]' in b"".join(plain["edgecases.AllTypes"])
    assert masked == plain


def test_generated_rows_masked_by_a_rule_that_changes_nothing_are_the_plain_lines(
    alias, masking, settings
):
    settings.DBTOOLS = {**settings.DBTOOLS, "MASK": ALL_TYPES_UNCHANGED}

    @PROPERTY_SETTINGS
    @given(rows=all_types_rows(connections[alias].vendor))
    def same_lines(rows: list[dict[str, Any]]) -> None:
        e.AllTypes.objects.using(alias).all().delete()
        for row in rows:
            e.AllTypes.objects.using(alias).create(**row)
        masked, plain = lines_masked_and_plain(alias, ["edgecases.AllTypes"])
        assert masked == plain

    same_lines()


@backends("postgresql")
def test_postgresql_masked_tables_take_the_server_path_for_their_other_columns(
    alias, masking, monkeypatch
):
    """The server writes a masked table's other columns and Python the masked
    ones: the rows are those the portable path writes, and no original value
    reaches the file."""
    originals = seed_customers(alias)
    served: list[str] = []
    masked_batches = pg_reads.masked_row_batches

    def watched(table, *args, **kwargs):  # type: ignore[no-untyped-def]
        served.append(table.label)
        return masked_batches(table, *args, **kwargs)

    monkeypatch.setattr(pg_reads, "masked_row_batches", watched)
    result = backup_database(using=alias, mask=True)
    assert set(served) == {"shop.User", "shop.Order", "shop.NewsletterSubscriber", "shop.Address"}
    assert leaked(result.path.read_bytes(), originals) == []
    monkeypatch.setattr(pg_reads, "can_write_masked", lambda *args: False)
    portable = backup_database(using=alias, mask=True)
    assert comparable_tables(read_backup(result.path)) == comparable_tables(
        read_backup(portable.path)
    )


@backends("postgresql")
def test_postgresql_masked_lines_spell_field_names_as_the_server_does(alias):
    """A masked column's key is written as row_to_json writes the others: a
    name such as `café` raw, not escaped to `caf\\u00e9`."""
    import copy
    import dataclasses

    from django.db import transaction

    m.NewsletterSubscriber.objects.using(alias).create(email="a@example.com")
    table = next(t for t in plan_tables(alias).tables if t.label == "shop.NewsletterSubscriber")
    renamed = []
    for field in table.fields:
        named = copy.copy(field)
        named.name = f"{field.name}_café"
        renamed.append(named)
    table = dataclasses.replace(table, fields=tuple(renamed))
    email = [f.column for f in table.fields].index("email")
    with transaction.atomic(using=alias):
        batches = pg_reads.masked_row_batches(
            table, connections[alias], 10, {email}, lambda columns: columns
        )
        [line] = next(batches)
        batches.close()
    assert '"email_café":"a@example.com"' in line and '"is_active_café":true' in line
    assert "\\u" not in line


@backends("postgresql")
def test_an_interrupt_in_a_masked_table_stops_its_reader_thread(alias, masking, monkeypatch):
    """As for a plain table (test_backup.py): the masked rows' generator closes
    the server's, whose reader thread would otherwise wait in Queue.put."""
    from dbtools.archive import ArchiveWriter
    from dbtools.backup import masked

    seed_shop(600, using=alias)
    monkeypatch.setattr(masked, "MASKED_BATCH_ROWS", 10)
    original, written = ArchiveWriter.write_rows, []

    def write_rows(self, rows):  # type: ignore[no-untyped-def]
        original(self, rows)
        written.append(len(rows))
        if len(written) == 3:
            time.sleep(0.5)  # the reader fills the queue and waits to put the next batch
            raise KeyboardInterrupt

    monkeypatch.setattr(ArchiveWriter, "write_rows", write_rows)
    with pytest.raises(KeyboardInterrupt):
        backup_database(using=alias, mask=True, jobs=1, only=["shop.Order"])
    assert [t.name for t in threading.enumerate() if t.name.startswith("dbtools-fetch-")] == []
    assert list(masking.iterdir()) == []
