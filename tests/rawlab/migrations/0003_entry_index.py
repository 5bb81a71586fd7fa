"""A table kept in step by a trigger, as Wagtail keeps its SQLite search index."""

from django.db import migrations, models


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    schema_editor.execute(
        "CREATE TRIGGER rawlab_entry_indexed AFTER INSERT ON rawlab_entry BEGIN "
        "INSERT INTO rawlab_entryindex (entry_id, title) VALUES (new.id, new.title); END"
    )


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute("DROP TRIGGER IF EXISTS rawlab_entry_indexed")


class Migration(migrations.Migration):
    dependencies = [("rawlab", "0002_touch_notes")]
    operations = [
        migrations.CreateModel(
            name="Entry",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("title", models.CharField(max_length=100)),
            ],
        ),
        migrations.CreateModel(
            name="EntryIndex",
            fields=[
                ("entry", models.OneToOneField(on_delete=models.deletion.CASCADE, primary_key=True, serialize=False, to="rawlab.entry")),
                ("title", models.CharField(max_length=100)),
            ],
        ),
        migrations.RunPython(create_trigger, drop_trigger),
    ]
