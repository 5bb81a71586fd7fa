"""safemigrate as a migration linter: every finding code on the backends where
it applies, the JSON report against its documented schema, and the exit codes
of --check, --fail-on, --no-input, --accept-risk and acknowledgements.

The lintlab app holds one migration per code. Each test moves lintlab to the
state it needs, with rows made through that state's models.
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import jsonschema
import orjson
import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.db.migrations.loader import MigrationLoader

from dbtools.conf import settings_problems
from dbtools.exceptions import MigrationError
from dbtools.migrate.checks.findings import CHECKS
from dbtools.migrate.checks.types import rewrites, widens
from tests.conftest import ROOT, backends

LAST = "0017_irreversible"
SCHEMA = json.loads((ROOT / "docs" / "safemigrate-report.schema.json").read_text())


class Lintlab:
    def __init__(self, alias: str) -> None:
        self.alias = alias

    def migrate(self, name: str) -> None:
        if ("lintlab", LAST) in MigrationLoader(connections[self.alias]).applied_migrations:
            # 0017 has no reverse; it changes no schema, so it can be faked away.
            call_command("migrate", "lintlab", "0016", fake=True, database=self.alias, verbosity=0)
        call_command("migrate", "lintlab", name, database=self.alias, verbosity=0)

    def model(self, name: str):
        loader = MigrationLoader(connections[self.alias])
        node = max(key for key in loader.applied_migrations if key[0] == "lintlab")
        return loader.project_state(node).apps.get_model("lintlab", name)

    def add(self, model: str = "Box", **fields) -> None:
        self.model(model).objects.using(self.alias).create(**fields)

    def applied(self) -> str:
        loader = MigrationLoader(connections[self.alias])
        return max(name for app, name in loader.applied_migrations if app == "lintlab")


@pytest.fixture
def lintlab(alias):
    lintlab = Lintlab(alias)
    yield lintlab
    with connections[alias].cursor() as cursor:
        for table in ("lintlab_box", "lintlab_crate", "lintlab_shelf"):
            if table in connections[alias].introspection.table_names(cursor):
                cursor.execute(f"DELETE FROM {table}")
    lintlab.migrate(LAST)


def safemigrate(alias: str, *args: str) -> tuple[str, str, int]:
    out, err = StringIO(), StringIO()
    try:
        call_command("safemigrate", *args, "--database", alias, stdout=out, stderr=err)
    except CommandError as exc:
        err.write(str(exc))
        return out.getvalue(), err.getvalue(), exc.returncode
    return out.getvalue(), err.getvalue(), 0


def report(alias: str, *args: str) -> tuple[dict, int]:
    out, err, code = safemigrate(alias, *args, "--format", "json")
    assert out, err
    document = orjson.loads(out)
    jsonschema.validate(document, SCHEMA)
    return document, code


def found(document: dict) -> set[tuple[str, str, str]]:
    return {(f["migration"].split(".")[1][:4], f["code"], f["level"]) for f in document["findings"]}


def rows_at_the_start(lintlab: Lintlab) -> None:
    lintlab.migrate("0001")
    lintlab.add(name="dup", note=None, flag=None, size=1, legacy="old notes")
    lintlab.add(name="dup", note="n", flag=True, size=2)
    lintlab.add("Crate", label="c")


EVERY_BACKEND = {
    ("0002", "DBT101", "high"),
    ("0003", "DBT102", "high"),
    ("0004", "DBT104", "high"),
    ("0005", "DBT105", "high"),  # acknowledged in the migration
    ("0006", "DBT106", "high"),
    ("0008", "DBT107", "high"),
    ("0009", "DBT108", "warning"),
    ("0010", "DBT109", "info"),
    ("0014", "DBT301", "warning"),
    ("0016", "DBT304", "high"),
    ("0017", "DBT302", "warning"),
    ("0017", "DBT302", "info"),  # elidable
    ("0017", "DBT303", "warning"),
    # The old code, running while it migrates (DBTOOLS['DEPLOY'] defaults to migrate-first):
    ("0002", "DBT401", "warning"),  # its INSERTs leave the required column out
    ("0003", "DBT401", "warning"),  # default=0 is Python's only: the column has no DEFAULT
    ("0004", "DBT403", "warning"),  # it selects the dropped column
    ("0005", "DBT403", "warning"),  # it queries the dropped table
    ("0006", "DBT401", "warning"),  # it may save None
    ("0007", "DBT401", "warning"),  # the NULLs are filled, but it may save None again
    ("0008", "DBT404", "warning"),
    ("0010", "DBT402", "warning"),
}
CODE_FIRST = {  # the new code, running on the old schema until migrate runs
    ("0002", "DBT405", "warning"),
    ("0003", "DBT405", "warning"),
    ("0004", "DBT401", "warning"),  # its INSERTs leave out a column still required
    ("0010", "DBT402", "warning"),
    ("0012", "DBT405", "warning"),
}
RUNNING_CODE = {"DBT401", "DBT402", "DBT403", "DBT404", "DBT405"}
POSTGRESQL_ONLY = {
    ("0006", "DBT203", "warning"),
    ("0007", "DBT203", "warning"),  # SET NOT NULL scans, though the NULLs are filled first
    ("0008", "DBT206", "warning"),
    ("0008", "DBT201", "warning"),  # the varchar_pattern_ops index of a unique CharField
    ("0009", "DBT205", "warning"),
    ("0011", "DBT201", "warning"),
    ("0012", "DBT201", "warning"),
    ("0012", "DBT202", "warning"),
    ("0013", "DBT204", "warning"),
}


def test_every_finding_code_at_its_level_on_each_backend(alias, lintlab, backup_dir):
    rows_at_the_start(lintlab)
    document, code = report(alias, "lintlab", "--check")
    expected = EVERY_BACKEND | (
        POSTGRESQL_ONLY if connections[alias].vendor == "postgresql" else set()
    )
    assert found(document) == expected
    assert code == 5
    assert document["blocking"] == 6  # the high ones but the acknowledged DBT105
    assert document["vendor"] == connections[alias].vendor
    assert [s["migration"] for s in document["steps"]] == [
        f"lintlab.{name}"
        for name in sorted(n for a, n in MigrationLoader(None).disk_migrations if a == "lintlab")
    ][1:]
    (crate,) = [f for f in document["findings"] if f["code"] == "DBT105"]
    assert crate["acknowledged"] == "Crates were never used; their rows are test data."
    (drop,) = [f for f in document["findings"] if f["code"] == "DBT304"]
    assert drop["sql"] == "DROP TABLE lintlab_scratch"
    assert drop["fix"] == CHECKS["DBT304"].fix
    assert backups_in(backup_dir) == []  # --check changes nothing
    assert lintlab.applied() == "0001_initial"


@pytest.mark.parametrize("deploy", ["code-first", "downtime"])
def test_the_running_code_is_judged_by_the_deploy_order(alias, lintlab, backup_dir, deploy):
    """migrate-first is the default (above); code-first judges the new code on the
    old schema; downtime has no code running meanwhile."""
    rows_at_the_start(lintlab)
    document, _code = report(alias, "lintlab", "--check", "--deploy", deploy)
    assert document["deploy"] == deploy
    running = {f for f in found(document) if f[1] in RUNNING_CODE}
    assert running == (CODE_FIRST if deploy == "code-first" else set())
    every = EVERY_BACKEND | (
        POSTGRESQL_ONLY if connections[alias].vendor == "postgresql" else set()
    )
    assert found(document) - running == {f for f in every if f[1] not in RUNNING_CODE}
    for finding in document["findings"]:
        assert (finding["running_code"] is not None) == (finding["code"] in RUNNING_CODE)
    if deploy == "code-first":
        (rename,) = [f for f in document["findings"] if f["code"] == "DBT402"]
        assert rename["running_code"] == (
            "Renames box.name to title: the new code queries the new name, and every query it "
            "makes on it fails until the migration runs."
        )


def test_the_deploy_order_is_validated_in_the_core(settings):
    from dbtools.checks import check_settings
    from dbtools.migrate.plan import plan_migrations

    with pytest.raises(MigrationError, match=r"^deploy must be one of 'migrate-first', "):
        plan_migrations("default", deploy="rolling")
    settings.DBTOOLS = {"DEPLOY": "rolling"}
    assert [e.msg for e in check_settings(None)] == [
        "DBTOOLS['DEPLOY'] must be one of 'migrate-first', 'code-first', 'downtime', not 'rolling'."
    ]


@backends("postgresql")
def test_postgresql_findings_name_the_statement_and_the_lock(alias, lintlab, backup_dir):
    rows_at_the_start(lintlab)
    out, _err, _code = safemigrate(alias, "lintlab", "--plan")
    assert (
        "  [WARNING] DBT202 lintlab.0012_box_shelf: Alter field shelf on box\n"
        "      Adding the foreign key scans lintlab_box (2 rows) to validate it under the ACCESS EXCLUSIVE "
        'lock that ALTER TABLE "lintlab_box" ADD COLUMN "shelf_id" bigint NULL took earlier in this '
        "migration: reads and writes wait until it commits.\n"
        '      SQL: ALTER TABLE "lintlab_box" ADD CONSTRAINT "lintlab_box_shelf_id_7ba172cb_fk_lintlab_shelf_id" '
        'FOREIGN KEY ("shelf_id") REFERENCES "lintlab_shelf" ("id") DEFERRABLE INITIALLY DEFERRED;\n'
        "      Fix: Add it NOT VALID (RunSQL with state_operations), then VALIDATE CONSTRAINT in a later "
        "migration: the validation then takes a lock that lets writes through.\n"
    ) in out
    assert (
        "  [WARNING] DBT201 lintlab.0011_note_index: Create index lintlab_note_idx on field(s) note of model box\n"
        "      The index build blocks writes to lintlab_box (2 rows) until it is done (SHARE lock).\n"
        '      SQL: CREATE INDEX "lintlab_note_idx" ON "lintlab_box" ("note");\n'
    ) in out


def test_migrating_backwards_flags_dropped_data_and_what_cannot_be_undone(
    alias, lintlab, backup_dir
):
    lintlab.migrate(LAST)
    lintlab.add(title="a", note="n", flag=False, size="1", count=1, weight=1)
    document, code = report(alias, "lintlab", "0001", "--check")
    assert code == 5
    expected = {
        ("0017", "DBT111", "high"),  # three operations without a reverse
        ("0015", "DBT304", "high"),  # its reverse drops the table
        ("0012", "DBT110", "high"),  # undoing AddField drops the column with data
        ("0003", "DBT110", "high"),
        ("0002", "DBT110", "high"),
    }
    if connections[alias].vendor == "postgresql":
        expected.add(("0009", "DBT205", "warning"))  # back from text to integer rewrites too
    assert found(document) == expected
    assert sum(f["code"] == "DBT111" for f in document["findings"]) == 3
    assert {s["direction"] for s in document["steps"]} == {"backwards"}
    (count,) = [f for f in document["findings"] if f["migration"].endswith("0002_box_count")]
    assert count["message"] == "Undoing it drops the column box.count and its data in 1 rows."
    assert count["operation"] == "Undo Add field count to box"
    (shelf,) = [s for s in document["steps"] if s["migration"] == "lintlab.0012_box_shelf"]
    assert [o["description"] for o in shelf["operations"]] == [
        "Undo Alter field shelf on box",
        "Undo Add field shelf to box",
    ]
    if connections[alias].vendor != "sqlite":  # SQLite rebuilds the table instead
        assert "_fk_lintlab_shelf_id" in " ".join(shelf["operations"][0]["sql"])

    document, _code = report(alias, "lintlab", "zero", "--check")
    (box,) = [f for f in document["findings"] if f["operation"] == "Undo Create model Box"]
    assert (box["code"], box["level"]) == ("DBT110", "high")
    assert box["message"] == "Undoing it drops the table of Box and its 1 rows."


def test_an_alter_field_with_a_default_over_nulls_is_not_flagged_and_migrates(
    alias, lintlab, backup_dir
):
    """The false alarm: Django fills the NULLs with the default, on every backend."""
    lintlab.migrate("0006")
    lintlab.add(name="a", note="n", flag=None, size=1, count=1, weight=1)
    lintlab.add(name="b", note="n", flag=True, size=2, count=1, weight=1)
    out, err, code = safemigrate(alias, "lintlab", "0007", "--no-input")
    assert code == 0, err
    assert "DBT106" not in out
    assert "Migrated: lintlab.0007_flag_required." in out
    flags = lintlab.model("Box").objects.using(alias).order_by("name").values_list("name", "flag")
    assert list(flags) == [("a", False), ("b", True)]


def test_check_exits_by_fail_on(alias, lintlab, backup_dir):
    lintlab.migrate("0008")
    lintlab.add(name="a", note="n", flag=True, size=1, count=1, weight=1)
    out, err, code = safemigrate(alias, "lintlab", "0009", "--check")
    assert (code, err) == (0, "")
    assert out.endswith("Check passed: no finding at or above high.\n")
    _out, err, code = safemigrate(alias, "lintlab", "0009", "--check", "--fail-on", "warning")
    codes = "DBT108, DBT205" if connections[alias].vendor == "postgresql" else "DBT108"
    count = 2 if connections[alias].vendor == "postgresql" else 1
    assert code == 5
    assert err == (
        f"{count} finding(s) at or above --fail-on warning ({codes}). Fix them, or acknowledge each "
        f"reviewed one in its migration (dbtools_accept) or in DBTOOLS['ACCEPT']."
    )
    assert lintlab.applied() == "0008_name_unique"


def test_no_input_refuses_high_findings_unless_risk_is_accepted(alias, lintlab, backup_dir):
    lintlab.migrate("0003")
    lintlab.add(name="a", note="n", flag=True, size=1, count=1, weight=1, legacy="keep me")
    _out, err, code = safemigrate(alias, "lintlab", "0004", "--no-input")
    assert code == 5
    assert err == (
        "1 high-risk finding(s), and --no-input cannot ask: nothing was changed. Review them, then "
        "pass --accept-risk, or acknowledge each in its migration (dbtools_accept) or in "
        "DBTOOLS['ACCEPT']."
    )
    assert backups_in(backup_dir) == [] and lintlab.applied() == "0003_box_weight"

    out, err, code = safemigrate(alias, "lintlab", "0004", "--no-input", "--accept-risk")
    assert code == 0, err
    assert "Migrated: lintlab.0004_remove_legacy." in out
    assert lintlab.applied() == "0004_remove_legacy"


def test_a_finding_acknowledged_in_settings_is_reported_as_such(
    alias, lintlab, backup_dir, settings
):
    settings.DBTOOLS = {
        "BACKUP_DIR": str(backup_dir),
        "ACCEPT": {"lintlab.0004_remove_legacy": {"DBT104": "legacy was emptied in release 3.1"}},
    }
    lintlab.migrate("0003")
    lintlab.add(name="a", note="n", flag=True, size=1, count=1, weight=1)
    lintlab.add("Crate", label="c")
    out, err, code = safemigrate(alias, "lintlab", "0005", "--check")
    assert (code, err) == (0, "")
    assert (
        "  [HIGH, acknowledged] DBT104 lintlab.0004_remove_legacy: Remove field legacy from box\n"
        "      The column box.legacy and its data in 1 rows are dropped.\n"
        "      Acknowledged: legacy was emptied in release 3.1\n"
    ) in out
    # The two warnings: the old code still selects the column and the table (DBT403).
    assert "Findings: 2 warning; 2 acknowledged.\n" in out

    _out, err, code = safemigrate(alias, "lintlab", "0005", "--no-input")
    assert code == 0, err
    assert lintlab.applied() == "0005_delete_crate"


@pytest.mark.parametrize(
    ("accept", "problem"),
    [
        ({"lintlab.0004_remove_legacy": {"DBT104": " "}},
         "DBTOOLS['ACCEPT']['lintlab.0004_remove_legacy'] gives DBT104 no reason: say why the risk is "
         "accepted, such as {\"DBT104\": \"the column is unused since release 3.2\"}."),
        ({"lintlab.0004_remove_legacy": {"DBT999": "fine"}},
         "DBTOOLS['ACCEPT']['lintlab.0004_remove_legacy'] names 'DBT999', which is not a finding code "
         "(see docs/safemigrate-checks.md)."),
        (["DBT104"],
         "DBTOOLS['ACCEPT'] must be a dict of migrations to accepted findings, such as "
         "{'shop.0007_drop_legacy': {'DBT104': 'unused since release 3.2'}}, not ['DBT104']."),
    ],
)  # fmt: skip
def test_a_bad_acknowledgement_in_settings_is_named(settings, accept, problem):
    settings.DBTOOLS = {"ACCEPT": accept}
    assert settings_problems() == [problem]


def test_a_bad_lock_timeout_is_named(alias, settings):
    settings.DBTOOLS = {"LOCK_TIMEOUT": "soon"}
    assert settings_problems() == [
        "DBTOOLS['LOCK_TIMEOUT'] must be a PostgreSQL duration such as '5s', '500ms' or '0' (off), not 'soon'."
    ]
    settings.DBTOOLS = {}
    _out, err, code = safemigrate(alias, "--lock-timeout", "forever")
    assert (code, err) == (
        1,
        "--lock-timeout must be a PostgreSQL duration such as '5s', '500ms' or '0' (off), not 'forever'.",
    )


def test_json_goes_with_plan_or_check(alias):
    _out, err, code = safemigrate(alias, "--format", "json")
    assert (code, err) == (1, "--format json goes with --plan or --check.")


def test_json_when_nothing_is_pending(alias):
    document, code = report(alias, "--check")
    assert code == 0
    assert (document["steps"], document["findings"], document["blocking"]) == ([], [], 0)


def test_every_code_is_documented_with_its_peers():
    reference = (ROOT / "docs" / "safemigrate-checks.md").read_text()
    readme = (ROOT / "README.md").read_text()
    for check in CHECKS.values():
        row = next(
            (line for line in reference.splitlines() if line.startswith(f"| `{check.code}`")), None
        )
        assert row, f"{check.code} has no row in docs/safemigrate-checks.md's table of checks"
        assert f"| {check.level} |" in row
        assert (check.migration_linter or "—") in row and (check.squawk or "—") in row
        assert f"{check.code} " in reference.split("## Examples", 1)[1], (
            f"{check.code} has no example"
        )
    # The README names each family of codes by its first and last code.
    codes = sorted(CHECKS)
    for family in sorted({code[:4] for code in codes}):
        members = [code for code in codes if code.startswith(family)]
        assert f"`{members[0]}`\N{EN DASH}`{members[-1]}`" in readme, (
            f"the README does not list {family}xx"
        )


@pytest.mark.parametrize(
    ("old", "new", "rewrite"),
    [
        ("character varying(20)", "varchar(30)", False),
        ("character varying(20)", "varchar(10)", True),
        ("character varying(20)", "text", False),
        ("text", "varchar", False),
        ("numeric(10,2)", "numeric(12, 2)", False),
        ("numeric(10,2)", "numeric(12, 3)", True),
        ("integer", "bigint", True),
        ("integer", "varchar(20)", True),
        ("integer", "integer", False),
        ("numeric(10,2)", "numeric(10, 2)", False),
        # PostgreSQL's internal names are the same types, not a change:
        ("integer", "int4", False),
        ("bigint", "int8", False),
        ("smallint", "int2", False),
        ("boolean", "bool", False),
        ("double precision", "float8", False),
        ("timestamp with time zone", "timestamptz", False),
        ("timestamp without time zone", "timestamp", False),
        ("integer", "int8", True),
    ],
)
def test_which_postgresql_type_changes_rewrite(old, new, rewrite):
    assert rewrites(old, new) is rewrite


@pytest.mark.parametrize(
    ("old", "new", "widening"),
    [
        ("character varying(200)", "varchar(300)", True),
        ("varchar(200)", "varchar(300)", True),
        ("varchar(300)", "varchar(200)", False),
        ("varchar(200)", "text", True),
        ("varchar(200)", "longtext", True),  # MariaDB's TextField
        ("text", "varchar(200)", False),
        ("smallint", "integer", True),
        ("integer", "bigint", True),
        (
            "integer AUTO_INCREMENT",
            "bigint AUTO_INCREMENT",
            True,
        ),  # MariaDB's AutoField to BigAutoField
        ("smallint UNSIGNED", "integer", True),
        ("integer UNSIGNED", "integer", False),
        ("integer", "integer UNSIGNED", False),
        ("bigint", "integer", False),
        ("numeric(10,2)", "numeric(12, 2)", True),
        ("numeric(10, 2)", "numeric(12, 3)", False),
        ("numeric(12, 2)", "numeric(10, 2)", False),
        ("integer", "varchar(20)", False),
        ("integer", "integer", False),
    ],
)
def test_which_type_changes_widen(old, new, widening):
    assert widens(old, new) is widening


def test_a_widening_is_no_type_change_finding_and_a_narrowing_is(alias, lintlab):
    from django.db import migrations, models

    lintlab.migrate(LAST)
    lintlab.add(title="a", note="n", flag=False, size="1", count=1, weight=1)
    add = [
        migrations.AddField("box", "small", models.SmallIntegerField(default=0)),
        migrations.AddField("box", "price", models.DecimalField(max_digits=10, decimal_places=2, default=0)),
    ]  # fmt: skip
    widenings = {
        "varchar": migrations.AlterField("box", "size", models.CharField(max_length=30)),
        "text": migrations.AlterField("box", "size", models.TextField()),
        "bigint": migrations.AlterField("box", "count", models.BigIntegerField()),
        "integer": migrations.AlterField("box", "small", models.IntegerField(default=0)),
        "numeric": migrations.AlterField(
            "box", "price", models.DecimalField(max_digits=12, decimal_places=2, default=0)
        ),
    }
    for name, operation in widenings.items():
        raised, _migration = probe(alias, *add, operation)
        assert [r for r in raised if r[1] == "DBT108"] == [], name

    narrowing = migrations.AlterField("box", "size", models.CharField(max_length=10))
    raised, _migration = probe(alias, narrowing)
    assert [r for r in raised if r[1] == "DBT108"] == [
        (0, "DBT108", "box.size changes type from varchar(20) to varchar(10): values that do not "
                      "convert make the migration fail."),
    ]  # fmt: skip


def backups_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_the_exit_codes_are_in_help():
    from django.core.management import load_command_class

    parser = load_command_class("dbtools", "safemigrate").create_parser("manage.py", "safemigrate")
    text = " ".join(parser.format_help().split())
    for code in range(7):
        assert f" {code} " in text.split("Exit codes:", 1)[1]
    assert "5 findings at or above --fail-on (--check)" in text


def test_a_postgresql_type_keeps_the_commas_inside_its_parentheses():
    from pglast import parse_sql

    from dbtools.migrate.checks.postgresql_rewrites import altered_types

    statement = (
        'ALTER TABLE "shop_product" ALTER COLUMN "price" TYPE numeric(12, 2) USING "price"::numeric(12, 2), '
        'ALTER COLUMN "name" TYPE varchar(80);'
    )
    assert [
        (column, new) for column, new, _using in altered_types(parse_sql(statement)[0].stmt)
    ] == [
        ("price", "numeric(12, 2)"),
        ("name", "varchar(80)"),
    ]


def test_a_bad_acknowledgement_in_a_migration_names_the_migration():
    from django.db import migrations

    from dbtools.exceptions import MigrationError
    from dbtools.migrate.plan import acknowledgements

    class Migration(migrations.Migration):
        dbtools_accept = ["DBT104"]

    migration = Migration("0004_remove_legacy", "lintlab")
    with pytest.raises(MigrationError) as raised:
        acknowledgements([(migration, False)])
    assert str(raised.value) == (
        "lintlab.0004_remove_legacy: dbtools_accept must be a dict of finding codes to reasons, such as "
        '{"DBT104": "the column is unused since release 3.2"}, not [\'DBT104\'].'
    )


def test_the_check_of_runpython_imports_nothing_itself(tmp_path, monkeypatch):
    """A relative `from .models import Box` names 'models': the check must look
    only at modules already loaded, never import one by that name."""
    from dbtools.migrate.checks.python_code import imported_models

    (tmp_path / "models.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict = {}
    exec("def forwards(apps, schema_editor):\n    from .models import Box\n", namespace)
    assert list(imported_models(namespace["forwards"])) == []
    assert not (tmp_path / "imported").exists()


def probe(
    alias: str, *operations, atomic: bool = True, deploy: str = "downtime"
) -> tuple[list[tuple[int, str, str]], object]:
    """Checks lintlab's next migration, made of these operations, against the
    database as it is: (operation index, code, message) per finding, and the
    migration (to apply it)."""
    from django.db import migrations

    from dbtools.migrate.checks.context import TableFacts
    from dbtools.migrate.checks.operations import check_operation
    from dbtools.migrate.plan import forwards_contexts

    connection = connections[alias]
    node = ("lintlab", Lintlab(alias).applied())
    state = MigrationLoader(connection).project_state(node)
    migration = type(
        "Migration",
        (migrations.Migration,),
        {"dependencies": [node], "operations": list(operations), "atomic": atomic},
    )("0099_probe", "lintlab")
    facts = TableFacts(connection)
    raised = []
    for index, context in enumerate(forwards_contexts(connection, facts, migration, state)):
        context.deploy = deploy
        raised += [
            (index, code, message) for code, message, _sql, _level in check_operation(context)
        ]
        facts.follow(context)  # as plan_migrations does
    return raised, migration


def apply(alias: str, migration) -> None:
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connections[alias])
    state = executor.loader.project_state(migration.dependencies[0])
    executor.apply_migration(state, migration)


@pytest.mark.parametrize(
    "field",
    [
        {"db_default": None, "default": None},
        {"db_default": None},
        {"default": None},
    ],
    ids=["db_default-and-default", "db_default", "default"],
)
def test_a_default_of_none_is_no_default_and_the_migration_fails(alias, lintlab, field):
    from django.db import IntegrityError, OperationalError, migrations, models

    lintlab.migrate(LAST)
    lintlab.add(title="a", note="n", flag=False, size="1", count=1, weight=1)
    operation = migrations.AddField("box", "extra", models.IntegerField(null=False, **field))
    raised, migration = probe(alias, operation)
    mysql = connections[alias].vendor == "mysql"
    if mysql and "db_default" in field:
        assert raised == [
            (0, "DBT101", "box.extra is required and its db_default is None: MariaDB and MySQL refuse "
                          "DEFAULT NULL on a NOT NULL column, so the migration will fail."),
        ]  # fmt: skip
        with pytest.raises(OperationalError) as failed:
            apply(alias, migration)
        assert failed.value.args == (1067, "Invalid default value for 'extra'")
    elif mysql:
        assert raised == [
            (0, "DBT101", "box.extra is required and has no default (a default of None is none), and the "
                          "table has 1 rows: MariaDB fills them with the type's implicit value (0, '', …), "
                          "which no code chose."),
        ]  # fmt: skip
        apply(alias, migration)
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT extra FROM lintlab_box")
            assert cursor.fetchall() == ((0,),)
            # 0099_probe is not on disk: undo it by hand.
            cursor.execute("ALTER TABLE lintlab_box DROP COLUMN extra")
            cursor.execute(
                "DELETE FROM django_migrations WHERE app = 'lintlab' AND name = '0099_probe'"
            )
        return
    else:
        assert raised == [
            (0, "DBT101", "box.extra is required and has no default (a default of None is none), and the "
                          "table has 1 rows: the migration will fail."),
        ]  # fmt: skip
        with pytest.raises(IntegrityError):
            apply(alias, migration)
    assert lintlab.applied() == LAST


def test_a_never_migrated_database_of_the_demo_project_has_no_finding(alias, tmp_path):
    """Django's contrib apps and the demo (config/settings.py) from empty: a table
    created earlier in the plan is empty, so nothing that needs rows is found."""
    import os
    import subprocess
    from urllib.parse import quote

    from tests.conftest import manage_command

    connection = connections[alias]
    name = f"dbtools_fresh_{os.getpid()}_{tmp_path.name[-12:]}".replace("-", "_").lower()
    server = connection.settings_dict
    login = quote(server["USER"] or "", safe="") + (
        f":{quote(server['PASSWORD'], safe='')}" if server.get("PASSWORD") else ""
    )
    where = f"{login}@{server['HOST'] or '127.0.0.1'}:{server['PORT']}/{name}"
    url = {
        "sqlite": f"sqlite:///{tmp_path / 'fresh.sqlite3'}",
        "postgresql": f"postgres://{where}",
        "mysql": f"mysql://{where}",
    }[connection.vendor]
    if connection.vendor != "sqlite":
        charset = " CHARACTER SET utf8mb4" if connection.vendor == "mysql" else ""
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}{charset}")
    try:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": url,
            "DBTOOLS_BACKUP_DIR": str(tmp_path / "backups"),
        }
        done = subprocess.run(
            manage_command("safemigrate", "--check", "--fail-on", "warning"),
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert (done.returncode, done.stderr) == (0, ""), done.stdout
        assert "Apply contenttypes.0002_remove_content_type_name\n" in done.stdout
        assert done.stdout.endswith(
            "Risk check: nothing risky found.\nCheck passed: no finding at or above warning.\n"
        )
    finally:
        if connection.vendor != "sqlite":
            with connection.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS {name}")


def test_a_column_added_earlier_in_the_plan_holds_only_its_default(alias, lintlab):
    """It is not in the database yet: its NULLs are the rows of the table."""
    from django.db import migrations, models

    lintlab.migrate(LAST)
    lintlab.add(title="a", note="n", flag=False, size="1", count=1, weight=1)
    lintlab.add(title="b", note="n", flag=False, size="1", count=1, weight=1)
    raised, _migration = probe(
        alias,
        migrations.AddField("box", "extra", models.IntegerField(null=True)),
        migrations.AlterField("box", "extra", models.IntegerField()),
        migrations.AddField("box", "tag", models.CharField(max_length=5, default="x")),
        migrations.AlterField(
            "box", "tag", models.CharField(max_length=5, default="x", unique=True)
        ),
    )
    assert [r for r in raised if r[1].startswith("DBT1")] == [
        (1, "DBT106", "box.extra becomes required, but 2 rows hold NULL and the migration fills nothing "
                      "in: it will fail."),
        (3, "DBT107", "box.tag must become unique, but all 2 rows hold the default their column was added "
                      "with earlier in the plan: the migration will fail."),
    ]  # fmt: skip


@backends("postgresql")
def test_an_index_built_after_an_alter_table_in_one_transaction_blocks_reads_too(alias, lintlab):
    """ADD COLUMN takes ACCESS EXCLUSIVE, and an atomic migration holds it to its
    commit: the index build that follows runs under it, not under its own SHARE lock."""
    from django.db import migrations, models

    lintlab.migrate(LAST)
    lintlab.add(title="a", note="n", flag=False, size="1", count=1, weight=1)
    raised, _migration = probe(
        alias,
        migrations.AddField("box", "code", models.IntegerField(null=True)),
        migrations.AddIndex("box", models.Index(fields=["code"], name="lintlab_code_idx")),
    )
    assert raised == [
        (1, "DBT201", 'The index build on lintlab_box (1 rows) runs under the ACCESS EXCLUSIVE lock that '
                      'ALTER TABLE "lintlab_box" ADD COLUMN "code" integer NULL took earlier in this '
                      'migration: reads and writes wait until it commits.'),
    ]  # fmt: skip

    raised, _migration = probe(
        alias, migrations.AddIndex("box", models.Index(fields=["size"], name="lintlab_size_idx"))
    )
    assert raised == [
        (0, "DBT201", "The index build blocks writes to lintlab_box (1 rows) until it is done (SHARE lock)."),
    ]  # fmt: skip

    # Not atomic: the ALTER TABLE commits, and its lock goes, before the index is built.
    raised, _migration = probe(
        alias,
        migrations.AddField("box", "code", models.IntegerField(null=True)),
        migrations.AddIndex("box", models.Index(fields=["code"], name="lintlab_code_idx")),
        atomic=False,
    )
    assert raised == [
        (1, "DBT201", "The index build blocks writes to lintlab_box (1 rows) until it is done (SHARE lock)."),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 'DROP TABLE lintlab_box; TRUNCATE x'", []),  # words in a string
        ("-- TRUNCATE lintlab_box\nSELECT 1", []),  # and in a comment
        ("ALTER TABLE lintlab_box ADD COLUMN price numeric(12, 2) NULL", []),
        # DBT403: the old code still selects the column
        ("ALTER TABLE lintlab_box DROP COLUMN note", ["DBT304", "DBT403"]),
        ("SELECT 1; TRUNCATE lintlab_box", ["DBT304"]),
        ("ALTER TABLE lintlab_box RENAME COLUMN note TO remark", ["DBT402"]),
        ("ALTER TABLE lintlab_box RENAME TO lintlab_carton", ["DBT402"]),
    ],
    ids=[
        "string",
        "comment",
        "numeric",
        "drop-column",
        "truncate",
        "rename-column",
        "rename-table",
    ],
)
def test_run_sql_is_judged_by_what_the_parser_reads(alias, lintlab, sql, expected):
    """RunSQL is parsed as the database reads it (pglast on PostgreSQL, sqlglot in
    the dialect elsewhere): a word inside a string or a comment is no statement,
    and a rename in SQL is seen as one by the running-code check, which regular
    expressions missed."""
    from django.db import migrations

    lintlab.migrate("0001")
    raised, _migration = probe(
        alias, migrations.RunSQL(sql, reverse_sql=migrations.RunSQL.noop), deploy="migrate-first"
    )
    assert [code for _index, code, _message in raised] == expected


def test_sql_the_parser_cannot_read_is_judged_by_its_words(alias, lintlab):
    from django.db import migrations

    lintlab.migrate("0001")
    block = "DO $$ BEGIN EXECUTE 'DROP TABLE lintlab_box'; END $$"
    raised, _migration = probe(alias, migrations.RunSQL(block, migrations.RunSQL.noop))
    assert [code for _index, code, _message in raised] == ["DBT304"]


@backends("postgresql")
@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ('ALTER TABLE ONLY "public"."lintlab_box" ALTER COLUMN "note" SET NOT NULL',
         [("DBT203", "SET NOT NULL on note scans lintlab_box (0 rows) under an ACCESS EXCLUSIVE lock "
                     "(reads and writes wait).")]),
        ("ALTER TABLE lintlab_box ADD COLUMN price numeric(12, 2) NOT NULL DEFAULT 0, "
         "ADD CONSTRAINT price_positive CHECK (price >= 0), ALTER COLUMN note SET NOT NULL",
         [("DBT203", "SET NOT NULL on note scans lintlab_box (0 rows) under an ACCESS EXCLUSIVE lock "
                     "(reads and writes wait)."),
          ("DBT204", "The CHECK constraint is validated against every row of lintlab_box (0 rows) under "
                     "an ACCESS EXCLUSIVE lock (reads and writes wait).")]),
        ('ALTER TABLE "lintlab_box" ADD CONSTRAINT "c" CHECK ("note" <> \'NOT VALID\')',
         [("DBT204", "The CHECK constraint is validated against every row of lintlab_box (0 rows) under "
                     "an ACCESS EXCLUSIVE lock (reads and writes wait).")]),
        ('ALTER TABLE "lintlab_box" ADD CONSTRAINT "c" CHECK ("count" >= 0) NOT VALID', []),
        ('ALTER TABLE "lintlab_box" ADD COLUMN "memo" text DEFAULT \'ALTER COLUMN "note" SET NOT NULL\'', []),
        ('ALTER TABLE "lintlab_box" ADD COLUMN "memo" text /* ADD CONSTRAINT c CHECK (true) */', []),
        ("SELECT $$DROP TABLE lintlab_box$$", []),
        ("ALTER TABLE public.lintlab_box RENAME COLUMN note TO remark",
         [("DBT402", "The SQL renames a table or column: the old code still queries the name it had (or "
                     "will have), and every query it makes on it fails until the release is complete.")]),
        ("DROP TABLE lintlab_box FROBNICATE",
         [("DBT304", "The SQL drops or truncates; what it removes is afterwards only in the backup."),
          ("DBT305", 'PostgreSQL\'s parser rejects it: syntax error at or near "FROBNICATE": the migration '
                     'will fail.')]),
    ],
    ids=[
        "only-and-schema",
        "unquoted-subcommands",
        "not-valid-in-a-string",
        "not-valid",
        "set-not-null-in-a-string",
        "check-in-a-comment",
        "drop-in-a-dollar-quote",
        "rename-column-schema",
        "unparsable-by-its-words",
    ],
)  # fmt: skip
def test_postgresql_sql_is_judged_as_postgresql_parses_it(alias, lintlab, sql, expected):
    """PostgreSQL's own parser reads the statement: the table behind ONLY and a
    schema, unquoted names, every subcommand of one ALTER TABLE, and NOT VALID
    or SET NOT NULL only where they are syntax, never inside a string or comment.
    What it cannot parse is still judged by its words."""
    from django.db import migrations

    lintlab.migrate("0001")
    raised, _migration = probe(
        alias, migrations.RunSQL(sql, reverse_sql=migrations.RunSQL.noop), deploy="migrate-first"
    )
    assert [(code, message) for _index, code, message in raised] == expected


@pytest.mark.parametrize("deploy", ["migrate-first", "code-first"])
def test_an_operation_that_sends_no_sql_is_no_running_code_finding(alias, lintlab, deploy):
    """The schema both codes meet is unchanged: a rename the fix of DBT402 keeps
    under its database name, a proxy model, a model the project does not manage."""
    from django.db import migrations, models

    from dbtools.migrate.checks.context import TableFacts
    from dbtools.migrate.checks.operations import check_operation
    from dbtools.migrate.plan import forwards_contexts

    lintlab.migrate(LAST)
    operations = [
        migrations.AlterField(
            "box", "title", models.CharField(max_length=50, unique=True, db_column="title")
        ),
        migrations.RenameField("box", "title", "heading"),
        migrations.CreateModel("BoxProxy", [], options={"proxy": True}, bases=("lintlab.box",)),
        migrations.DeleteModel("BoxProxy"),
        migrations.CreateModel(
            "Ghost",
            [("id", models.AutoField(primary_key=True)), ("label", models.CharField(max_length=9))],
            options={"managed": False, "db_table": "lintlab_elsewhere"},
        ),
        migrations.AddField("ghost", "extra", models.IntegerField()),
        migrations.RemoveField("ghost", "label"),
        migrations.DeleteModel("Ghost"),
    ]
    connection = connections[alias]
    node = ("lintlab", lintlab.applied())
    state = MigrationLoader(connection).project_state(node)
    migration = type(
        "Migration", (migrations.Migration,), {"dependencies": [node], "operations": operations}
    )("0099_probe", "lintlab")
    facts = TableFacts(connection)
    raised = []
    for context in forwards_contexts(connection, facts, migration, state):
        assert context.sql == []
        context.deploy = deploy  # as plan_migrations does
        raised += [code for code, *_rest in check_operation(context)]
        facts.follow(context)
    assert [code for code in raised if code in RUNNING_CODE] == []


@pytest.mark.parametrize("deploy", ["migrate-first", "code-first"])
def test_a_generated_column_is_no_required_column_for_the_running_code(alias, lintlab, deploy):
    """The database computes it: INSERTs that leave it out succeed."""
    from django.db import migrations, models

    lintlab.migrate(LAST)
    doubled = models.GeneratedField(
        expression=models.F("count") * 2, output_field=models.IntegerField(), db_persist=True
    )
    raised, _migration = probe(
        alias,
        migrations.AddField("box", "doubled", doubled),
        migrations.RemoveField("box", "doubled"),
        deploy=deploy,
    )
    assert "DBT401" not in [code for _index, code, _message in raised]


@backends("postgresql")
@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE IF NOT EXISTS lintlab_box (id bigint)",
        "CREATE TABLE elsewhere.lintlab_box (id bigint)",
        "CREATE TEMP TABLE lintlab_box (id bigint)",
    ],
    ids=["if-not-exists", "other-schema", "temp"],
)
def test_sql_that_creates_no_new_table_here_leaves_the_table_checked(alias, lintlab, sql):
    """The existing lintlab_box keeps its rows: IF NOT EXISTS skips it, and a table
    in another schema or a TEMP one is another table. The checks after it, in the
    migration and in the plan, still see the rows."""
    from django.db import migrations, models

    from dbtools.migrate.checks.sql import tables_created

    lintlab.migrate(LAST)
    lintlab.add(title="a", note="n", flag=False, size="1", count=1, weight=1)
    assert tables_created([sql], connections[alias]) == set()
    raised, _migration = probe(
        alias,
        migrations.RunSQL(sql, reverse_sql=migrations.RunSQL.noop),
        migrations.AddField("box", "extra", models.IntegerField()),
    )
    assert raised == [
        (1, "DBT101", "box.extra is required and has no default, and the table has 1 rows: the migration "
                      "will fail."),
    ]  # fmt: skip


@backends("postgresql")
def test_sql_that_creates_a_new_table_in_the_connection_schema_is_read_as_created(alias, lintlab):
    from dbtools.migrate.checks.sql import tables_created

    lintlab.migrate(LAST)
    connection = connections[alias]
    assert tables_created(["CREATE TABLE IF NOT EXISTS lintlab_new (id bigint)"], connection) == {
        "lintlab_new"
    }
    assert tables_created(["CREATE TABLE public.lintlab_new (id bigint)"], connection) == {
        "lintlab_new"
    }


@backends("postgresql")
@pytest.mark.parametrize("kind", ["run-sql", "operation"])
def test_concurrently_in_an_atomic_migration_is_found_to_fail(alias, lintlab, kind):
    """PostgreSQL refuses CREATE INDEX CONCURRENTLY in a transaction, and Django
    refuses AddIndexConcurrently in an atomic migration: both fail as they migrate."""
    from django.contrib.postgres.operations import AddIndexConcurrently
    from django.db import DatabaseError, migrations, models

    lintlab.migrate(LAST)
    sql = 'CREATE INDEX CONCURRENTLY "lintlab_title_idx" ON "lintlab_box" ("title")'
    operation = (
        migrations.RunSQL(sql, reverse_sql=migrations.RunSQL.noop)
        if kind == "run-sql"
        else AddIndexConcurrently("box", models.Index(fields=["title"], name="lintlab_title_idx"))
    )
    what = "CONCURRENTLY" if kind == "run-sql" else "AddIndexConcurrently"
    raised, migration = probe(alias, operation)
    assert raised == [
        (0, "DBT207", f"{what} cannot run inside a transaction block, and this migration is atomic (one "
                      f"transaction): the migration will fail."),
    ]  # fmt: skip
    assert CHECKS["DBT207"].level == "high"
    with pytest.raises(DatabaseError):
        apply(alias, migration)
    assert lintlab.applied() == LAST

    raised, _migration = probe(alias, operation, atomic=False)
    assert raised == []


def test_nulls_filled_by_earlier_sql_of_the_migration_are_no_failure(alias, lintlab):
    """The UPDATE runs before the AlterField makes the column required: no NULL is left."""
    from django.db import migrations, models

    lintlab.migrate("0005")
    lintlab.add(name="a", note=None, flag=None, size=1, count=1, weight=1)
    quote = connections[alias].ops.quote_name
    fill = migrations.RunSQL(
        f"UPDATE {quote('lintlab_box')} SET {quote('note')} = '' WHERE {quote('note')} IS NULL",
        reverse_sql=migrations.RunSQL.noop,
    )
    required = migrations.AlterField("box", "note", models.CharField(max_length=20))
    raised, _migration = probe(alias, required)
    assert "DBT106" in [code for _index, code, _message in raised]
    raised, _migration = probe(alias, fill, required)
    assert "DBT106" not in [code for _index, code, _message in raised]


@backends("postgresql")
@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("ALTER TABLE lintlab_box ALTER COLUMN note SET NOT NULL",
         [("DBT106", "lintlab_box.note becomes required, but 1 rows hold NULL and the migration fills "
                     "nothing in: it will fail."),
          ("DBT203", "SET NOT NULL on note scans lintlab_box (2 rows) under an ACCESS EXCLUSIVE lock "
                     "(reads and writes wait).")]),
        ("UPDATE lintlab_box SET note = '' WHERE note IS NULL; "
         "ALTER TABLE lintlab_box ALTER COLUMN note SET NOT NULL",
         [("DBT203", "SET NOT NULL on note scans lintlab_box (2 rows) under an ACCESS EXCLUSIVE lock "
                     "(reads and writes wait).")]),
        ("ALTER TABLE lintlab_box ALTER COLUMN size SET NOT NULL",
         [("DBT203", "SET NOT NULL on size scans lintlab_box (2 rows) under an ACCESS EXCLUSIVE lock "
                     "(reads and writes wait).")]),
        ("ALTER TABLE lintlab_box ADD COLUMN z int NOT NULL",
         [("DBT101", "lintlab_box.z is required and has no default, and the table has 2 rows: the "
                     "migration will fail.")]),
        ("ALTER TABLE lintlab_box ADD COLUMN z int NOT NULL DEFAULT NULL",
         [("DBT101", "lintlab_box.z is required and has no default, and the table has 2 rows: the "
                     "migration will fail.")]),
        ("ALTER TABLE lintlab_box ADD COLUMN z int NOT NULL DEFAULT 0", []),
        ("ALTER TABLE lintlab_box ADD COLUMN z bigserial NOT NULL",
         [("DBT208", "Adding z rewrites lintlab_box (2 rows) and its indexes under an ACCESS EXCLUSIVE lock "
                     "(reads and writes wait): its bigserial type draws a new value from a sequence for every "
                     "row.")]),
        ("ALTER TABLE lintlab_box ADD COLUMN z int", []),
        ("ALTR TABLE lintlab_box ADD COLUMN z int",
         [("DBT305", 'PostgreSQL\'s parser rejects it: syntax error at or near "ALTR": the migration will '
                     'fail.')]),
    ],
    ids=["set-not-null-over-nulls", "filled-first", "no-nulls", "add-not-null", "default-null",
         "default", "serial", "nullable", "syntax-error"],
)  # fmt: skip
def test_run_sql_is_judged_for_the_data_as_the_operations_are(alias, lintlab, sql, expected):
    """A NOT NULL made by hand fails over the same rows as one Django makes, and SQL
    the server's grammar rejects fails as it migrates."""
    from django.db import DatabaseError, migrations

    lintlab.migrate("0005")
    lintlab.add(name="a", note=None, flag=None, size=1, count=1, weight=1)
    lintlab.add(name="b", note="n", flag=None, size=1, count=1, weight=1)
    raised, migration = probe(alias, migrations.RunSQL(sql, reverse_sql=migrations.RunSQL.noop))
    assert [(code, message) for _index, code, message in raised] == expected
    if any(code in ("DBT101", "DBT106", "DBT305") for code, _message in expected):
        with pytest.raises(DatabaseError):
            apply(alias, migration)
        assert lintlab.applied() == "0005_delete_crate"


@backends("postgresql")
def test_sql_with_parameters_is_not_judged_by_its_placeholders(alias, lintlab):
    from django.db import migrations

    lintlab.migrate(LAST)
    operation = migrations.RunSQL(
        [("UPDATE lintlab_box SET note = %s WHERE note IS NULL", ["x"])],
        reverse_sql=migrations.RunSQL.noop,
    )
    raised, _migration = probe(alias, operation)
    assert raised == []


def test_nulls_filled_by_an_earlier_migration_of_the_plan_are_no_failure(alias, lintlab):
    """plan_migrations carries one TableFacts through every step of the plan."""
    from django.db import migrations, models

    from dbtools.migrate.checks.context import TableFacts
    from dbtools.migrate.checks.operations import check_operation
    from dbtools.migrate.plan import forwards_contexts

    lintlab.migrate("0005")
    lintlab.add(name="a", note=None, flag=None, size=1, count=1, weight=1)
    quote = connections[alias].ops.quote_name
    connection = connections[alias]
    node = ("lintlab", lintlab.applied())
    state = MigrationLoader(connection).project_state(node)
    steps = [
        [migrations.RunSQL(
            f"UPDATE {quote('lintlab_box')} SET {quote('note')} = '' WHERE {quote('note')} IS NULL",
            reverse_sql=migrations.RunSQL.noop,
        )],
        [migrations.AlterField("box", "note", models.CharField(max_length=20))],
    ]  # fmt: skip
    facts = TableFacts(connection)
    raised = []
    for number, operations in enumerate(steps, start=98):
        migration = type(
            "Migration", (migrations.Migration,), {"dependencies": [node], "operations": operations}
        )(f"00{number}_probe", "lintlab")
        contexts = forwards_contexts(connection, facts, migration, state)
        for context in contexts:
            raised += [code for code, *_rest in check_operation(context)]
            facts.follow(context)
        state, node = contexts[-1].after, ("lintlab", migration.name)
    assert "DBT106" not in raised


@backends("postgresql")
@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("CREATE TEMP TABLE lintlab_tally AS SELECT count(*) FROM lintlab_box; DROP TABLE lintlab_tally", []),
        ("CREATE TABLE lintlab_tally (id int); DROP TABLE lintlab_tally", []),
        ("SELECT 1 AS one INTO TEMP lintlab_tally; DROP TABLE lintlab_tally", []),
        ("DROP TABLE IF EXISTS lintlab_nowhere", []),
        ("DROP TABLE IF EXISTS lintlab_nowhere, lintlab_box", ["DBT304"]),
        ("DROP TABLE IF EXISTS public.lintlab_nowhere", ["DBT304"]),
        ("CREATE TABLE IF NOT EXISTS lintlab_box (id int); DROP TABLE lintlab_box", ["DBT304"]),
        ("CREATE TEMP TABLE lintlab_tally (id int); TRUNCATE lintlab_box", ["DBT304"]),
    ],
    ids=["temp-as", "created", "select-into", "if-exists-absent", "if-exists-present",
         "schema", "if-not-exists", "truncate-other"],
)  # fmt: skip
def test_a_drop_of_a_table_that_holds_nothing_kept_is_no_finding(alias, lintlab, sql, expected):
    """A table the same SQL creates, or one that IF EXISTS finds absent, loses
    nothing when it is dropped."""
    from django.db import migrations

    lintlab.migrate(LAST)
    raised, _migration = probe(alias, migrations.RunSQL(sql, reverse_sql=migrations.RunSQL.noop))
    assert [code for _index, code, _message in raised] == expected
