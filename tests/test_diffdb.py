"""diffdb: exact, streaming, schema-aware differences, on every backend."""

from __future__ import annotations

import json
import sqlite3
import tempfile
from io import BytesIO, StringIO
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import orjson
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from dbtools import diff_database
from dbtools.archive.envelope import identity_file
from dbtools.backends import pg_reads
from dbtools.backup import backup_database
from dbtools.conf import settings_problems
from dbtools.diff import compare, flow
from dbtools.diff.compare import Pairing, compare_table, key_reader, merge_join
from dbtools.diff.report import DiffError, TableDiff, cut
from dbtools.restore import prepare_restore, restore_database
from shop import models as m
from shop.seed import seed_shop
from tests.conftest import backends
from tests.data import fill_edge_cases
from tests.helpers import resign, rewrite_backup
from tests.test_envelope import make_key
from tests.test_replay import backup_before_the_data_migration  # noqa: F401  (a fixture)
from tests.test_safemigrate import lab  # noqa: F401  (a fixture)

SCHEMA = json.loads(
    (Path(__file__).resolve().parent.parent / "docs" / "diffdb-report.schema.json").read_text()
)


def diffdb(*args: str) -> tuple[str, int]:
    """(stdout, exit status) of `manage.py diffdb ARGS`."""
    out = StringIO()
    try:
        call_command("diffdb", *args, stdout=out)
    except SystemExit as exc:
        return out.getvalue(), int(exc.code or 0)
    return out.getvalue(), 0


def run_script(alias: str) -> dict[str, object]:
    """What a data script does: updates, inserts, deletes. Returns what it did."""
    products = list(m.Product.objects.using(alias).order_by("slug")[:3])
    for product in products:
        product.name = product.name + " (renamed)"
        product.save(update_fields=["name"])
    first = m.Category.objects.using(alias).order_by("pk")[0]
    first.position = 99
    first.name = "Changed"
    first.save(update_fields=["position", "name"])
    m.Category.objects.using(alias).create(name="Extra", slug="extra")
    m.Category.objects.using(alias).create(name="Extra 2", slug="extra-2")
    deleted = list(
        m.UserActivity.objects.using(alias).order_by("pk").values_list("pk", flat=True)[:4]
    )
    m.UserActivity.objects.using(alias).filter(pk__in=deleted).delete()
    return {"products": len(products), "category": first.pk, "deleted": deleted}


def test_a_database_restored_with_replace_diffs_empty(alias, backup_dir):
    fill_edge_cases(alias)
    seed_shop(300, using=alias)
    backup = backup_database(using=alias)
    m.Product.objects.using(alias).update(price=0)
    m.Category.objects.using(alias).create(name="Extra", slug="extra")
    restore_database(prepare_restore(backup.path, using=alias), mode="replace")

    result = diff_database(backup.path, using=alias)

    assert not result.differs, [t for t in result.tables if t.differs]
    assert {"shop.Product", "edgecases.AllTypes"} <= {t.label for t in result.tables}
    assert sum(t.same for t in result.tables) == backup.rows


def test_after_a_script_the_counts_and_changed_columns_are_exact(alias, backup_dir):
    seed_shop(300, using=alias)
    backup = backup_database(using=alias)
    done = run_script(alias)

    result = diff_database(using=alias, rows=2)

    differing = {t.label: t for t in result.differing}
    assert set(differing) == {"shop.Product", "shop.Category", "shop.UserActivity"}
    product = differing["shop.Product"]
    assert (product.only_in_backup, product.only_in_database, product.changed) == (0, 0, 3)
    assert product.columns == {"name": 3}
    category = differing["shop.Category"]
    assert (category.only_in_backup, category.only_in_database, category.changed) == (0, 2, 1)
    assert category.columns == {"name": 1, "position": 1}
    changed = next(e for e in category.examples if e.kind == "changed")
    assert changed.key == [done["category"]]
    assert changed.changes["position"][1] == 99 and changed.changes["name"][1] == "Changed"
    activity = differing["shop.UserActivity"]
    assert (activity.only_in_backup, activity.only_in_database, activity.changed) == (4, 0, 0)
    assert [e.key for e in activity.examples] == [[pk] for pk in done["deleted"][:2]]
    assert result.old == "db-backup-latest.json" and backup.latest is not None


def test_two_backups_diff(alias, backup_dir):
    seed_shop(200, using=alias)
    before = backup_database(using=alias).path
    run_script(alias)
    after = backup_database(using=alias).path

    result = diff_database(before, against=after, only=["shop"])

    counts = {t.label: (t.only_in_backup, t.only_in_database, t.changed) for t in result.differing}
    assert counts == {
        "shop.Product": (0, 0, 3),
        "shop.Category": (0, 2, 1),
        "shop.UserActivity": (4, 0, 0),
    }
    assert all(t.label.startswith("shop.") for t in result.tables)
    assert not diff_database(after, against=after).differs


def test_the_command_exits_1_and_its_json_validates(alias, backup_dir, settings):
    settings.DBTOOLS = {**settings.DBTOOLS, "SENSITIVE_FIELDS": ["shop.Product.name"]}
    seed_shop(100, using=alias)
    backup_database(using=alias)
    out, status = diffdb("--database", alias)
    assert status == 0 and "no difference in" in out
    run_script(alias)

    out, status = diffdb("--database", alias, "--rows", "3", "--format", "json")

    assert status == 1
    document = json.loads(out)
    jsonschema.validate(document, SCHEMA)
    product = next(t for t in document["tables"] if t["label"] == "shop.Product")
    assert product["columns"] == {"name": 3}
    assert all(
        e["changes"]["name"] == {"old": "(hidden)", "new": "(hidden)"} for e in product["examples"]
    )
    text, status = diffdb("--database", alias, "--rows", "1", "--only", "shop.Category")
    assert status == 1
    assert "shop.Category: 2 added, 1 changed (name 1, position 1)\n" in text


def test_a_backup_from_older_migrations_diffs_through_the_mapping(
    alias,
    backup_before_the_data_migration,  # noqa: F811
):
    backup, _migrated = backup_before_the_data_migration

    result = diff_database(backup, using=alias, only=["replaylab"])

    (plan,) = result.tables
    assert (plan.only_in_backup, plan.only_in_database, plan.changed) == (0, 0, 0)
    assert plan.same == 3
    assert plan.schema_changes == [
        "billing_interval: not in the backup, takes 'MONTH'",
        "billing_interval_count: not in the backup, takes 1",
        "delivery_schedule: not in the model any more, ignored",
    ]
    assert plan.differs


def test_error_for_an_unknown_label_exits_2(alias, backup_dir):
    seed_shop(20, using=alias)
    backup_database(using=alias)
    with pytest.raises(CommandError, match=r"^Unknown model 'shop.Nothing'") as raised:
        call_command("diffdb", "--database", alias, "--only", "shop.Nothing")
    assert raised.value.returncode == 2


def test_error_for_no_backup_exits_2(alias, backup_dir):
    with pytest.raises(CommandError, match=r"no db-backup-latest") as raised:
        call_command("diffdb", "--database", alias)
    assert raised.value.returncode == 2


def test_a_renamed_column_is_one_schema_change_and_compared_under_its_new_name(
    alias,
    backup_dir,
    lab,  # noqa: F811
):
    lab.migrate("0001")
    for i, size in enumerate([3, 0, 12]):
        lab.add(name=f"gadget {i}", code="A", size=size, legacy="")
    backup = backup_database(using=alias, only=["lab"]).path
    lab.migrate("0002")
    lab.model().objects.using(alias).filter(name="gadget 1").update(dimension=7)

    (gadget,) = diff_database(backup, using=alias, only=["lab"], rows=5).tables

    assert gadget.schema_changes == ["size -> dimension (renamed)"]
    assert (gadget.only_in_backup, gadget.only_in_database, gadget.changed) == (0, 0, 1)
    assert gadget.columns == {"dimension": 1}
    assert gadget.examples[0].changes == {"dimension": (0, 7)}


def test_merge_join_pairs_by_key_and_refuses_rows_out_of_order():
    key = key_reader(["id"])
    old = [{"id": 1}, {"id": 2}, {"id": 4}]
    new = [{"id": 2}, {"id": 3}, {"id": 4}, {"id": 5}]
    pairs = [(o and o["id"], n and n["id"]) for o, n in merge_join(iter(old), iter(new), key, key)]
    assert pairs == [(1, None), (2, 2), (None, 3), (4, 4), (None, 5)]
    with pytest.raises(DiffError, match=r"^Rows are not in primary-key order \(key 1 after 2\)"):
        list(merge_join(iter([{"id": 2}, {"id": 1}]), iter([]), key, key))


def test_long_values_are_cut_and_short_ones_kept():
    assert cut("x" * 100) == "x" * 59 + "…"
    assert cut({"a": 1}) == {"a": 1}
    assert cut(12) == 12


def test_two_backups_of_different_schemas_name_each_column_change(
    alias,
    backup_dir,
    lab,  # noqa: F811
):
    lab.migrate("0001")
    lab.add(name="gadget", code="A", size=3, legacy="")
    before = backup_database(using=alias, only=["lab"]).path
    lab.migrate("0002")
    after = backup_database(using=alias, only=["lab"]).path

    (gadget,) = diff_database(before, against=after).tables

    assert gadget.schema_changes == [
        "dimension: added (not in the old backup)",
        "size: removed (not in the new backup)",
    ]
    assert (gadget.changed, gadget.same) == (0, 1)


def test_error_for_sensitive_fields_that_are_not_a_list(settings):
    settings.DBTOOLS = {"SENSITIVE_FIELDS": "password"}
    assert settings_problems() == [
        "DBTOOLS['SENSITIVE_FIELDS'] must be a list of field names or app_label.Model.field "
        "labels whose values are never shown, such as ['password'], not 'password'."
    ]


def test_error_for_an_unexpected_failure_is_one_line_and_exits_2(alias, backup_dir, monkeypatch):
    seed_shop(20, using=alias)
    backup_database(using=alias)

    def fail(*args: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(flow, "compare_table", fail)
    with pytest.raises(CommandError) as raised:
        call_command("diffdb", "--database", alias)
    assert raised.value.returncode == 2
    assert str(raised.value) == (
        "The diff could not be made (OperationalError: database or disk is full). Nothing was "
        "changed: diffdb only reads."
    )


def test_json_values_differ_by_type_too(alias, backup_dir):
    """true is not 1 and 1.0 is not 1 in JSON, though Python says they are equal."""
    settings_rows = m.SiteSettings.objects.using(alias)
    for key, value in [("flag", True), ("ratio", 1.0), ("same", 2)]:
        settings_rows.create(key=key, value=value)
    backup_database(using=alias, only=["shop.SiteSettings"])
    settings_rows.filter(key__in=["flag", "ratio"]).update(value=1)

    (table,) = diff_database(using=alias, only=["shop.SiteSettings"], rows=5).tables

    assert (table.changed, table.same, table.columns) == (2, 1, {"value": 2})
    assert [(e.key, e.changes) for e in table.examples] == [
        (["flag"], {"value": (True, 1)}),
        (["ratio"], {"value": (1.0, 1)}),
    ]
    out, status = diffdb("--database", alias, "--only", "shop.SiteSettings")
    assert status == 1 and "shop.SiteSettings: 2 changed (value 2)" in out


def test_floats_and_numbers_in_json_are_compared_as_the_codec_wrote_them():
    key = [("id", "id")]
    columns = [("f", "f"), ("j", "j"), ("n", "n")]
    old = [b'{"id":1,"f":0.0,"j":{"a":[1,12345678901234567890123]},"n":"x"}']
    new = [b'{"id":1,"f":-0.0,"j":{"a":[1,12345678901234567890124]},"n":"x"}']
    diff = TableDiff("t.T")
    pairing = Pairing(key, columns, exact=frozenset({"j"}), numbers={"f": "float"})

    compare_table(diff, old, new, pairing, 0)

    assert (diff.changed, diff.columns) == (1, {"f": 1, "j": 1})
    same = TableDiff("t.T")
    compare_table(same, old, old, pairing, 0)
    assert same.same == 1


def test_two_spellings_of_one_number_are_the_same_value():
    """PostgreSQL's server writes 3 and 0.0000001000 where Python writes 3.0
    and 1.000E-7: a backup through one path diffed against a database read
    through the other is not "changed"; -0.0 against 0 still is."""
    key, columns = [("id", "id")], [("f", "f"), ("d", "d")]
    pairing = Pairing(key, columns, numbers={"f": "float", "d": "decimal"})
    old = [
        b'{"id":1,"f":3.0,"d":"1.000E-7"}',
        b'{"id":2,"f":1e-07,"d":"12.5000000000"}',
        b'{"id":3,"f":"NaN","d":"NaN"}',
        b'{"id":4,"f":0.0,"d":"1.5"}',
        b'{"id":5,"f":9007199254740992.0,"d":null}',
    ]
    new = [
        b'{"id":1,"f":3,"d":"0.0000001000"}',
        b'{"id":2,"f":1e-7,"d":"12.5"}',
        b'{"id":3,"f":"NaN","d":"NaN"}',
        b'{"id":4,"f":-0.0,"d":"1.6"}',
        b'{"id":5,"f":9.007199254740992e+15,"d":null}',
    ]
    diff = TableDiff("t.T")

    compare_table(diff, old, new, pairing, 0)

    assert (diff.same, diff.changed, diff.columns) == (4, 1, {"f": 1, "d": 1})


@backends("postgresql")
def test_a_backup_through_the_portable_path_diffs_empty_against_the_server_path(alias, backup_dir):
    from django.db import connections

    from tests.edgecases.models import AllTypes

    AllTypes.objects.using(alias).create(float=3.0, decimal="0.0000001")
    AllTypes.objects.using(alias).create(float=-0.0, decimal="1E+5")
    settings_dict = connections[alias].settings_dict
    settings_dict["DISABLE_SERVER_SIDE_CURSORS"] = True
    try:
        backup = backup_database(using=alias, only=["edgecases.AllTypes"])
    finally:
        del settings_dict["DISABLE_SERVER_SIDE_CURSORS"]
    assert b'"1.000E-7"' in Path(backup.path).read_bytes()  # Python's spelling, not the server's

    (table,) = diff_database(backup.path, using=alias, only=["edgecases.AllTypes"]).tables

    assert (table.same, table.changed, table.columns) == (2, 0, {})


def test_a_sensitive_primary_key_is_hidden_in_the_rows_shown(alias, backup_dir, settings):
    settings.DBTOOLS = {**settings.DBTOOLS, "SENSITIVE_FIELDS": ["shop.VerificationToken.token"]}
    tokens = m.VerificationToken.objects.using(alias)
    expires = timezone.now()
    for i in range(3):
        tokens.create(identifier=f"user{i}@example.com", token=f"secret-{i}", expires=expires)
    backup_database(using=alias, only=["shop.VerificationToken"])
    changed, deleted = tokens.order_by("identifier", "token")[:2]
    tokens.filter(pk=changed.pk).update(expires=changed.expires.replace(year=2001))
    tokens.filter(pk=deleted.pk).delete()
    tokens.create(identifier="new@example.com", token="added-secret", expires=expires)

    text, status = diffdb("--database", alias, "--only", "shop.VerificationToken", "--rows", "5")
    document, _ = diffdb(
        "--database", alias, "--only", "shop.VerificationToken", "--rows", "5", "--format", "json"
    )

    assert status == 1
    for out in (text, document):
        for secret in (changed.token, deleted.token, "added-secret"):
            assert secret not in out
    assert f'  ~ ("{changed.identifier}", (hidden)): expires: ' in text
    assert f'  - deleted: ("{deleted.identifier}", (hidden))' in text
    assert '  + added: ("new@example.com", (hidden))' in text
    (table,) = json.loads(document)["tables"]
    assert sorted(e["key"] for e in table["examples"]) == [
        ["new@example.com", "(hidden)"],
        [changed.identifier, "(hidden)"],
        [deleted.identifier, "(hidden)"],
    ]


READ_APART = (
    "{what} ran inside your open transaction (transaction.atomic()), whose isolation level "
    "(read committed) does not read every table at one moment: rows other sessions commit "
    "meanwhile may show in some tables and not in others. Call it outside the transaction, or "
    "in one begun at REPEATABLE READ, for one consistent view."
)


def test_inside_a_callers_transaction_it_says_whether_it_read_one_snapshot(alias, backup_dir):
    """As backupdb does: it reads in the caller's transaction (seeing its own
    writes), and says so where that transaction reads no one snapshot
    (PostgreSQL's and MariaDB's READ COMMITTED, Django's default); SQLite's
    transactions always read one."""
    from django.db import connections, transaction

    seed_shop(30, using=alias)
    backup = backup_database(using=alias, only=["shop.Category"])
    with transaction.atomic(using=alias):
        m.Category.objects.using(alias).create(name="Mine", slug="mine")
        result = diff_database(backup.path, using=alias)
        again = backup_database(using=alias, only=["shop.Category"])

    (category,) = result.differing
    assert category.only_in_database == 1  # the caller's own row, seen
    apart = connections[alias].vendor != "sqlite"
    assert result.warnings == ([READ_APART.format(what="diff_database()")] if apart else [])
    assert again.warnings == ([READ_APART.format(what="backup_database()")] if apart else [])
    assert diff_database(backup.path, using=alias).warnings == []


# Equal lines counted unparsed ---------------------------------------------------


def categories(alias: str, count: int) -> list[int]:
    made = [
        m.Category.objects.using(alias).create(name=f"C{i}", slug=f"c-{i}") for i in range(count)
    ]
    return [c.pk for c in made]


def edit_rows(path: Path, label: str, edit) -> None:  # type: ignore[no-untyped-def]
    """Edit one table's row lines as written (no parse, no new encoding), checksums redone."""
    lines = path.read_bytes().split(b"\n")
    start = next(i for i, line in enumerate(lines) if f'"label":"{label}"'.encode() in line) + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(b"],"))
    rows = edit([line.removeprefix(b",") for line in lines[start:end]])
    lines[start:end] = [(b"," if i else b"") + row for i, row in enumerate(rows)]
    path.write_bytes(b"\n".join(lines))
    resign(path)


def counted_parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    parses = [0]

    def loads(line: bytes | str) -> object:
        parses[0] += 1
        return orjson.loads(line)

    monkeypatch.setattr(compare, "orjson", SimpleNamespace(loads=loads, dumps=orjson.dumps))
    return parses


def test_only_the_rows_whose_lines_differ_are_parsed(alias, backup_dir, monkeypatch):
    pks = categories(alias, 40)
    backup_database(using=alias, only=["shop.Category"])
    rows = m.Category.objects.using(alias)
    rows.filter(pk=pks[4]).delete()  # a deleted row in the middle
    rows.filter(pk=pks[7]).update(name="Changed")  # a changed row next to equal ones
    rows.filter(pk__in=pks[9:11]).update(position=5)  # two changed rows in a row
    added = rows.create(name="Last", slug="last").pk  # an added row at the end
    parses = counted_parses(monkeypatch)

    (table,) = diff_database(using=alias, only=["shop.Category"], rows=10).tables

    assert (table.only_in_backup, table.only_in_database, table.changed) == (1, 1, 3)
    assert (table.same, table.columns) == (36, {"name": 1, "position": 2})
    assert [(e.kind, e.key) for e in table.examples] == [
        ("only_in_backup", [pks[4]]),
        ("changed", [pks[7]]),
        ("changed", [pks[9]]),
        ("changed", [pks[10]]),
        ("only_in_database", [added]),
    ]
    # The rows around the differences (and the one before each), not all 79 lines.
    assert parses[0] < 30


@pytest.mark.parametrize(
    ("edit", "keys"),
    [
        (lambda rows: rows[:5] + rows[4:], "{4} after {4}"),  # a key twice, after equal rows
        (lambda rows: [*rows[:3], rows[4], rows[3], *rows[5:]], "{3} after {4}"),  # swapped
        (lambda rows: [rows[1], rows[0], *rows[2:]], "{0} after {1}"),  # swapped at the start
        (lambda rows: [*rows, rows[-1]], "{7} after {7}"),  # the last row twice
        (lambda rows: [*rows, rows[2]], "{2} after {7}"),  # an old row again at the end
    ],
)
def test_error_for_backup_rows_out_of_order_among_equal_lines(alias, backup_dir, edit, keys):
    pks = categories(alias, 8)
    path = backup_database(using=alias, only=["shop.Category"]).path
    edit_rows(path, "shop.Category", edit)
    expected = keys.format(*pks)

    with pytest.raises(DiffError, match=rf"^Rows are not in primary-key order \(key {expected}\)"):
        diff_database(path, using=alias, only=["shop.Category"])


def test_equal_lines_against_a_changed_layout_are_compared_by_value():
    key, columns = [("id", "id")], [("id", "id"), ("a", "a")]
    old = [b'{"id":1,"a":1}', b'{"id":2,"a":2}', b'{"id":3,"a":3}', b'{"id":4,"a":4}']
    new = ['{"id":1,"a":1}', '{"a":2,"id":2}', '{"id":3,"a":4}', b'{"id":4,"a":4}']
    diff = TableDiff("t.T")

    compare_table(diff, old, new, Pairing(key, columns), 5)

    assert (diff.same, diff.changed, diff.columns) == (3, 1, {"a": 1})
    assert diff.examples[0].key == [3]


def spooled_tables(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    spooled: list[str] = []
    spool = pg_reads.HelperReaders.spool

    def spy(self, table, connection):  # type: ignore[no-untyped-def]
        spooled.append(table.label)
        return spool(self, table, connection)

    monkeypatch.setattr(pg_reads.HelperReaders, "spool", spy)
    return spooled


@backends("postgresql")
def test_a_second_connection_reads_tables_ahead_in_the_same_snapshot(
    alias, backup_dir, monkeypatch, tmp_path
):
    seed_shop(200, using=alias)
    backup_database(using=alias)
    done = run_script(alias)
    spooled = spooled_tables(monkeypatch)
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))

    result = diff_database(using=alias)

    assert spooled  # tables from the end of the backup's order
    counts = {t.label: (t.only_in_backup, t.only_in_database, t.changed) for t in result.differing}
    assert counts == {
        "shop.Product": (0, 0, done["products"]),
        "shop.Category": (0, 2, 1),
        "shop.UserActivity": (4, 0, 0),
    }
    assert sum(t.same for t in result.tables) > 0
    assert list(temp.iterdir()) == []  # no spool left behind


def test_uuid_keys_are_merge_joined_where_both_databases_sort_them_as_text(
    alias, backup_dir, monkeypatch
):
    seed_shop(100, using=alias)
    path = backup_database(using=alias, only=["shop.Product"]).path
    products = m.Product.objects.using(alias)
    changed = products.order_by("pk")[1]
    products.filter(pk=changed.pk).update(name="Changed")
    products.create(name="New", slug="new-product", price=1)
    spilled: list[str] = []
    spill = compare.spilled_lines

    def spy(lines, names, where):  # type: ignore[no-untyped-def]
        spilled.append(str(where))
        return spill(lines, names, where)

    monkeypatch.setattr(compare, "spilled_lines", spy)

    (table,) = diff_database(path, using=alias, only=["shop.Product"]).tables
    from_mariadb = path.with_name("from-mariadb.json")
    rewrite_backup(path, from_mariadb, change_meta=lambda meta: {**meta, "vendor": "mysql"})
    (again,) = diff_database(from_mariadb, using=alias, only=["shop.Product"]).tables

    for counted in (table, again):
        assert (counted.only_in_database, counted.changed, counted.columns) == (1, 1, {"name": 1})
    # PostgreSQL's uuid sorts as its text: only a backup from MariaDB is spilled to sort.
    assert len(spilled) == (2 if alias == "postgresql" else 4)


@pytest.mark.parametrize("block", [1, 2, 3, 5, 1 << 20])
def test_a_spool_is_read_back_line_for_line_whatever_the_block(monkeypatch, block):
    monkeypatch.setattr(flow, "SPOOL_BLOCK", block)
    lines = [b'{"id":1,"a":"x,y"}', b'{"id":2,"a":"\\n,"}', b"{}"]
    spool = BytesIO(b"\n,".join(lines) + b"\n")

    assert [line for block in flow.spool_lines(spool) for line in block] == lines
    assert list(flow.spool_lines(BytesIO(b""))) == []


@backends("postgresql")
def test_against_an_encrypted_backup_one_connection_reads_and_nothing_is_spooled(
    alias, backup_dir, monkeypatch, settings, tmp_path
):
    key = make_key(tmp_path)
    settings.DBTOOLS = {**settings.DBTOOLS, "ENCRYPT_TO": [key.public]}
    seed_shop(100, using=alias)
    path = backup_database(using=alias).path
    run_script(alias)
    spooled = spooled_tables(monkeypatch)

    with identity_file(key.identity):
        result = diff_database(path, using=alias)

    assert spooled == []
    assert {t.label for t in result.differing} == {
        "shop.Product",
        "shop.Category",
        "shop.UserActivity",
    }


def test_text_keys_are_spilled_and_only_their_differing_lines_compared():
    key, columns = [("k", "k")], [("k", "k"), ("a", "a")]
    old = [b'{"k":"b","a":1}', b'{"k":"a","a":1}', b'{"k":"d","a":1}', b'{"k":"c","a":1}']
    new = [b'{"k":"c","a":2}', b'{"k":"a","a":1}', b'{"k":"e","a":1}', b'{"a":1,"k":"b"}']
    diff = TableDiff("t.T")

    compare_table(diff, old, new, Pairing(key, columns, ordered=False), 5)

    assert (diff.same, diff.changed, diff.only_in_backup, diff.only_in_database) == (2, 1, 1, 1)
    assert [(e.kind, e.key) for e in diff.examples] == [
        ("changed", ["c"]),
        ("only_in_backup", ["d"]),
        ("only_in_database", ["e"]),
    ]
    with pytest.raises(DiffError, match=r"^A primary key appears twice"):
        compare_table(
            TableDiff("t.T"), [*old, old[1]], new, Pairing(key, columns, ordered=False), 0
        )
