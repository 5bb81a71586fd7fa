#!/usr/bin/env python
"""What squawk and django-migration-linter say about each safemigrate check's example.

    python3 -m venv peers-venv
    peers-venv/bin/pip install squawk-cli==2.70.0 django-migration-linter==6.0.0 'django>=5.2,<6.2'
    peers-venv/bin/pip install 'psycopg[binary]'   # for the PostgreSQL run
    python bench/peer_linters.py peers-venv [POSTGRESQL_HOST]

Not part of the test suite: it needs both peers installed in a virtualenv of
their own (given as the argument). For squawk, each example is written as the
PostgreSQL SQL Django makes for it (inside BEGIN/COMMIT when the migration is
atomic) and linted as a file. For django-migration-linter, a throwaway
project on SQLite gets an app whose migrations are the examples, one
operation each, linted with `lintmigrations` on SQLite and, given a
PostgreSQL host (user postgres, database postgres; sqlmigrate only reads),
on PostgreSQL. Prints one row per example: squawk's rules (without the
generic ones in GENERIC), then django-migration-linter's verdict and codes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

# Rules squawk raises on nearly any DDL (or any varchar); they say nothing about one check.
GENERIC = {
    "prefer-robust-stmts",
    "require-lock-timeout",
    "require-statement-timeout",
    "prefer-bigint-over-int",
    "prefer-text-field",
}

BOX = '"lintlab_box"'
# code -> the PostgreSQL SQL of its docs example, as Django writes it.
SQUAWK_SQL = {
    "DBT101": f'ALTER TABLE {BOX} ADD COLUMN "count" integer NOT NULL;',
    "DBT102": f'ALTER TABLE {BOX} ADD COLUMN "weight" integer DEFAULT 0 NOT NULL;\n'
    f'ALTER TABLE {BOX} ALTER COLUMN "weight" DROP DEFAULT;',
    "DBT104": f'ALTER TABLE {BOX} DROP COLUMN "legacy" CASCADE;',
    "DBT105": 'DROP TABLE "lintlab_crate" CASCADE;',
    "DBT106": f'ALTER TABLE {BOX} ALTER COLUMN "note" SET NOT NULL;',
    "DBT107": f'ALTER TABLE {BOX} ADD CONSTRAINT "lintlab_box_name_uniq" UNIQUE ("name");\n'
    f'CREATE INDEX "lintlab_box_name_like" ON {BOX} ("name" varchar_pattern_ops);',
    "DBT108": f'ALTER TABLE {BOX} ALTER COLUMN "size" TYPE varchar(20) USING "size"::varchar(20);',
    "DBT108 widening": f'ALTER TABLE {BOX} ALTER COLUMN "name" TYPE varchar(100);',
    "DBT108 to text": f'ALTER TABLE {BOX} ALTER COLUMN "name" TYPE text;',
    "DBT109": f'ALTER TABLE {BOX} RENAME COLUMN "name" TO "title";\n'
    'ALTER TABLE "lintlab_crate" RENAME TO "lintlab_bin";',
    # Backwards over the AddField of DBT101: the SQL that undoing it runs.
    "DBT110": f'ALTER TABLE {BOX} DROP COLUMN "count" CASCADE;',
    "DBT201": f'CREATE INDEX "lintlab_note_idx" ON {BOX} ("note");',
    "DBT202": f'ALTER TABLE {BOX} ADD CONSTRAINT "lintlab_box_shelf_id_fk" FOREIGN KEY ("shelf_id") '
    'REFERENCES "lintlab_shelf" ("id") DEFERRABLE INITIALLY DEFERRED;',
    "DBT202 NOT VALID": f'ALTER TABLE {BOX} ADD CONSTRAINT "lintlab_box_shelf_id_fk" '
    'FOREIGN KEY ("shelf_id") REFERENCES "lintlab_shelf" ("id") NOT VALID;',
    "DBT204": f'ALTER TABLE {BOX} ADD CONSTRAINT "lintlab_count_not_negative" CHECK ("count" >= 0);',
    "DBT206 PRIMARY KEY": f'ALTER TABLE {BOX} ADD CONSTRAINT "lintlab_box_pk" PRIMARY KEY ("id");',
    "DBT207": f'CREATE INDEX CONCURRENTLY "lintlab_title_idx" ON {BOX} ("title");',
    "DBT208": "ALTER TABLE lintlab_box ADD COLUMN token uuid DEFAULT gen_random_uuid();",
    "DBT208 now()": "ALTER TABLE lintlab_box ADD COLUMN seen timestamptz DEFAULT now();",
    "DBT303": "SELECT 1;",
    "DBT304": "DROP TABLE lintlab_scratch;",
    "DBT304 TRUNCATE": "TRUNCATE lintlab_scratch CASCADE;",
    "DBT305": "ALTR TABLE lintlab_box ADD COLUMN z int;",
    "DBT306": "DELETE FROM lintlab_box;",
    "DBT307": "DROP TYPE lintlab_mood CASCADE;",
}

MODELS = """\
from django.db import models

class Shelf(models.Model):
    name = models.CharField(max_length=20)

class Box(models.Model):
    name = models.CharField(max_length=50)
    note = models.CharField(max_length=20, null=True)
    size = models.IntegerField(default=0)
    legacy = models.IntegerField(null=True)
    shelf = models.ForeignKey(Shelf, null=True, on_delete=models.SET_NULL, db_constraint=False)

class Crate(models.Model):
    pass

class Bin(models.Model):
    pass
"""

INITIAL = """\
from django.db import migrations, models

class Migration(migrations.Migration):
    initial = True
    operations = [
        migrations.CreateModel("Shelf", [
            ("id", models.BigAutoField(primary_key=True)),
            ("name", models.CharField(max_length=20)),
        ]),
        migrations.CreateModel("Box", [
            ("id", models.BigAutoField(primary_key=True)),
            ("name", models.CharField(max_length=50)),
            ("note", models.CharField(max_length=20, null=True)),
            ("size", models.IntegerField(default=0)),
            ("legacy", models.IntegerField(null=True)),
            ("shelf", models.ForeignKey("lab.Shelf", null=True, on_delete=models.SET_NULL,
                                        db_constraint=False)),
        ]),
        migrations.CreateModel("Crate", [("id", models.BigAutoField(primary_key=True))]),
        migrations.CreateModel("Bin", [("id", models.BigAutoField(primary_key=True))]),
    ]
"""

NOOP = "migrations.RunSQL.noop"
# code -> the operation of its docs example, one migration each, in this order.
OPERATIONS = [
    ("DBT101", 'migrations.AddField("box", "count", models.IntegerField())'),
    (
        "DBT102",
        'migrations.AddField("box", "weight", models.IntegerField(default=0), '
        "preserve_default=False)",
    ),
    ("DBT104", 'migrations.RemoveField("box", "legacy")'),
    ("DBT105", 'migrations.DeleteModel("Crate")'),
    ("DBT106", 'migrations.AlterField("box", "note", models.CharField(max_length=20))'),
    (
        "DBT107",
        'migrations.AlterField("box", "name", models.CharField(max_length=50, unique=True))',
    ),
    ("DBT108", 'migrations.AlterField("box", "size", models.CharField(max_length=20))'),
    ("DBT109", 'migrations.RenameField("box", "name", "title")'),
    ("DBT109 RenameModel", 'migrations.RenameModel("Bin", "Tray")'),
    ("DBT201", 'migrations.AddIndex("box", models.Index(fields=["note"], name="lab_note_idx"))'),
    (
        "DBT202",
        'migrations.AlterField("box", "shelf", models.ForeignKey("lab.Shelf", null=True, '
        "on_delete=models.SET_NULL))",
    ),
    (
        "DBT204",
        'migrations.AddConstraint("box", models.CheckConstraint('
        'condition=models.Q(count__gte=0), name="lab_count_not_negative"))',
    ),
    (
        "DBT207",
        f'migrations.RunSQL(\'CREATE INDEX CONCURRENTLY "lab_t" ON "lab_box" ("title")\', {NOOP})',
    ),
    (
        "DBT208",
        f'migrations.RunSQL("ALTER TABLE lab_box ADD COLUMN token uuid DEFAULT gen_random_uuid()", {NOOP})',
    ),
    ("DBT301", "migrations.RunPython(count_boxes, migrations.RunPython.noop)"),
    ("DBT302", "migrations.RunPython(touch_nothing)"),
    ("DBT303", 'migrations.RunSQL("SELECT 1")'),
    ("DBT304", 'migrations.RunSQL("DROP TABLE lab_scratch", "CREATE TABLE lab_scratch (id int)")'),
    ("DBT305", f'migrations.RunSQL("ALTR TABLE lab_box ADD COLUMN z int", {NOOP})'),
    ("DBT306", f'migrations.RunSQL("DELETE FROM lab_box", {NOOP})'),
    ("DBT307", f'migrations.RunSQL("DROP TYPE lab_mood CASCADE", {NOOP})'),
    ("DBT108 widening", 'migrations.AlterField("shelf", "name", models.CharField(max_length=40))'),
]

MIGRATION = """\
from django.db import migrations, models

def count_boxes(apps, schema_editor):
    from lab.models import Box
    Box.objects.count()

def touch_nothing(apps, schema_editor):
    pass

class Migration(migrations.Migration):
    dependencies = [("lab", "{previous}")]
    operations = [{operation}]
"""

SETTINGS = """\
import os
SECRET_KEY = "peer-linters"
INSTALLED_APPS = ["lab", "django_migration_linter"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}
if os.environ.get("PEER_PG_HOST"):
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ["PEER_PG_HOST"],
        "PORT": os.environ.get("PEER_PG_PORT", "5432"),
        "USER": os.environ.get("PEER_PG_USER", "postgres"),
        "NAME": os.environ.get("PEER_PG_NAME", "postgres"),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
"""

# django-migration-linter prints its messages; its codes (which its settings
# take) are these.
LINTER_CODES = {
    "NOT NULL constraint on columns": "NOT_NULL",
    "DROPPING columns": "DROP_COLUMN",
    "DROPPING table": "DROP_TABLE",
    "RENAMING columns": "RENAME_COLUMN",
    "RENAMING tables": "RENAME_TABLE",
    "ALTERING columns": "ALTER_COLUMN",
    "ADDING unique constraint": "ADD_UNIQUE",
    "CREATE INDEX locks table": "CREATE_INDEX",
    "CREATE INDEX prolongs transaction": "CREATE_INDEX_EXCLUSIVE",
    "DROP INDEX locks table": "DROP_INDEX",
    "REINDEX locks table": "REINDEX",
    "RunPython data migration is not reversible": "RUNPYTHON_REVERSIBLE",
    "Importing the model directly": "RUNPYTHON_MODEL_IMPORT",
    "Model variable name": "RUNPYTHON_MODEL_VARIABLE_NAME",
    "RunSQL data migration is not reversible": "RUNSQL_REVERSIBLE",
}


def squawk_rules(venv: Path, work: Path) -> dict[str, list[str]]:
    seen = {}
    for name, sql in SQUAWK_SQL.items():
        path = work / (re.sub(r"\W+", "_", name) + ".sql")
        path.write_text(f"BEGIN;\n{sql}\nCOMMIT;\n")
        done = subprocess.run(
            [venv / "bin" / "squawk", "--reporter", "json", path],
            capture_output=True,
            text=True,
        )
        rules = {entry["rule_name"] for entry in json.loads(done.stdout or "[]")}
        seen[name] = sorted(rules - GENERIC)
    return seen


def make_project(root: Path) -> None:
    (root / "lab" / "migrations").mkdir(parents=True)
    (root / "lab" / "__init__.py").write_text("")
    (root / "lab" / "models.py").write_text(MODELS)
    (root / "lab" / "migrations" / "__init__.py").write_text("")
    (root / "lab" / "migrations" / "0001_initial.py").write_text(INITIAL)
    (root / "settings.py").write_text(SETTINGS)
    previous = "0001_initial"
    for number, (code, operation) in enumerate(OPERATIONS, start=2):
        name = f"{number:04d}_" + re.sub(r"\W+", "_", code).lower()
        text = MIGRATION.format(previous=previous, operation=operation)
        (root / "lab" / "migrations" / f"{name}.py").write_text(text)
        previous = name


def linter_verdicts(venv: Path, root: Path, env: dict[str, str]) -> dict[str, str]:
    """{code: "ERR NOT_NULL, ..."} as `lintmigrations` judges each example."""
    done = subprocess.run(
        [venv / "bin" / "django-admin", "lintmigrations", "lab", "--no-cache"],
        capture_output=True,
        text=True,
        cwd=root,
        env={"DJANGO_SETTINGS_MODULE": "settings", "PYTHONPATH": str(root), **env},
    )
    verdicts: dict[str, tuple[str, set[str]]] = {}
    current = None
    for line in done.stdout.splitlines():
        head = re.match(r"\(lab, (\d{4})_\w+\)\.\.\.\s*(\w+)", line)
        if head:
            number = int(head.group(1))
            current = OPERATIONS[number - 2][0] if number >= 2 else None
            if current:
                verdicts[current] = (head.group(2), set())
        elif current and line.startswith("\t"):
            codes = [code for text, code in LINTER_CODES.items() if text in line]
            verdicts[current][1].update(codes or [line.strip()])
    if not verdicts:
        sys.exit(f"lintmigrations printed nothing usable:\n{done.stdout}\n{done.stderr}")
    return {
        code: verdict if verdict == "OK" else f"{verdict} {', '.join(sorted(found))}"
        for code, (verdict, found) in verdicts.items()
    }


def main() -> None:
    venv = Path(sys.argv[1]).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rules = squawk_rules(venv, work)
        make_project(work / "project")
        sqlite = linter_verdicts(venv, work / "project", {})
        # PostgreSQL's SQL for the same operations; sqlmigrate only reads the
        # server, so any database it may connect to will do.
        pg_host = sys.argv[2] if len(sys.argv) > 2 else ""
        env = {"PEER_PG_HOST": pg_host}
        postgresql = linter_verdicts(venv, work / "project", env) if pg_host else {}
    print("squawk:")
    for name, found in rules.items():
        print(f"  {name}: {', '.join(found) or 'not flagged'}")
    print("django-migration-linter (on SQLite | on PostgreSQL):")
    for code, _operation in OPERATIONS:
        print(f"  {code}: {sqlite.get(code, '?')} | {postgresql.get(code, '?')}")


if __name__ == "__main__":
    main()
