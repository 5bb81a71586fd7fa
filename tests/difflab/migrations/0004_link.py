"""Link, whose title column ignores case on every backend: the model has no
db_collation (each backend names its own), so the column is changed here."""

from django.db import migrations, models

STATE = migrations.CreateModel(
    "Link",
    [
        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
        ("url", models.CharField(max_length=1000, unique=True)),
        ("title", models.CharField(max_length=50)),
    ],
)
CASELESS = {
    # the test database's collation is utf8mb4_bin
    "mysql": ["ALTER TABLE difflab_link MODIFY title varchar(50) NOT NULL COLLATE utf8mb4_general_ci"],
    "postgresql": [
        "CREATE COLLATION IF NOT EXISTS difflab_caseless "
        "(provider = icu, locale = 'und-u-ks-level2', deterministic = false)",
        "ALTER TABLE difflab_link ALTER COLUMN title TYPE varchar(50) COLLATE difflab_caseless",
    ],
    "sqlite": [
        "DROP TABLE difflab_link",
        'CREATE TABLE "difflab_link" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, '
        '"url" varchar(1000) NOT NULL UNIQUE, "title" varchar(50) NOT NULL COLLATE NOCASE)',
    ],
}


def caseless(apps, schema_editor):
    for sql in CASELESS.get(schema_editor.connection.vendor, []):
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("difflab", "0003_code")]
    operations = [STATE, migrations.RunPython(caseless, migrations.RunPython.noop, atomic=False)]
