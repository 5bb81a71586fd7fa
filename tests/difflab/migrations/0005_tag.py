"""Tag, whose text primary key ignores case on every backend (see 0004). The
table is made here: PostgreSQL's LIKE index, which Django adds to a text
primary key, refuses a non-deterministic collation."""

from django.db import migrations, models

STATE = migrations.CreateModel(
    "Tag",
    [
        ("code", models.CharField(max_length=20, primary_key=True, serialize=False)),
        ("note", models.CharField(max_length=50)),
    ],
)
CASELESS = {
    "mysql": "varchar(20) COLLATE utf8mb4_general_ci",
    "postgresql": "varchar(20) COLLATE difflab_caseless",
    "sqlite": "varchar(20) COLLATE NOCASE",
}


def create(apps, schema_editor):
    quote = schema_editor.quote_name
    schema_editor.execute(
        f"CREATE TABLE {quote('difflab_tag')} ({quote('code')} "
        f"{CASELESS[schema_editor.connection.vendor]} NOT NULL PRIMARY KEY, "
        f"{quote('note')} varchar(50) NOT NULL)"
    )


def drop(apps, schema_editor):
    schema_editor.execute(f"DROP TABLE {schema_editor.quote_name('difflab_tag')}")


class Migration(migrations.Migration):
    dependencies = [("difflab", "0004_link")]
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[STATE], database_operations=[migrations.RunPython(create, drop)]
        )
    ]
