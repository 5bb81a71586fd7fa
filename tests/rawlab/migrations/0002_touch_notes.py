"""A data migration written as many real ones are: it names no database, or
names `default`, instead of using `schema_editor.connection.alias`."""

from django.db import DEFAULT_DB_ALIAS, connection, migrations, models
from django.db.models import F, Value
from django.db.models.functions import Concat


def touch_notes(apps, schema_editor):
    # While the test run sets up another backend's database, `default` may be
    # a database this run never created (only that backend's tests selected).
    if "rawlab_note" not in connection.introspection.table_names():
        return
    with connection.cursor() as cursor:
        cursor.execute("UPDATE rawlab_note SET touched = touched + 1")
    Note = apps.get_model("rawlab", "Note")
    Note.objects.using(DEFAULT_DB_ALIAS).update(text=Concat(F("text"), Value("!")))


def welcome_label(apps, schema_editor):
    """Initial content, as a CMS's migrations make a welcome page."""
    Label = apps.get_model("rawlab", "Label")
    Label.objects.using(schema_editor.connection.alias).create(id=1, name="welcome")


class Migration(migrations.Migration):
    dependencies = [("rawlab", "0001_initial")]
    operations = [
        migrations.RunPython(touch_notes, migrations.RunPython.noop),
        migrations.CreateModel(
            name="Label",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=50)),
            ],
        ),
        migrations.RunPython(welcome_label, migrations.RunPython.noop),
    ]
