"""Not atomic, so each step commits on its own: a failure in the last one
leaves the earlier ones behind on every backend, as MariaDB does with any DDL."""

from django.db import migrations, models


def quote(schema_editor, name):
    return schema_editor.connection.ops.quote_name(name)


def add_raw_index(apps, schema_editor):
    schema_editor.execute(
        f"CREATE INDEX {quote(schema_editor, 'rollbacklab_raw_idx')} "
        f"ON {quote(schema_editor, 'rollbacklab_widget')} ({quote(schema_editor, 'size')})"
    )


def drop_raw_index(apps, schema_editor):
    on = " ON rollbacklab_widget" if schema_editor.connection.vendor == "mysql" else ""
    schema_editor.execute(f"DROP INDEX {quote(schema_editor, 'rollbacklab_raw_idx')}{on}")


def fail_on_marked_widgets(apps, schema_editor):
    Widget = apps.get_model("rollbacklab", "Widget")
    widgets = Widget.objects.using(schema_editor.connection.alias)
    if widgets.filter(name="leave-a-column").exists():
        schema_editor.execute(f"CREATE TABLE {quote(schema_editor, 'rollbacklab_leftover')} (id integer)")
        raise RuntimeError("a widget is named 'leave-a-column'")
    if widgets.filter(name="explode").exists():
        raise RuntimeError("a widget is named 'explode'")


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("rollbacklab", "0001_initial")]
    operations = [
        migrations.AddIndex("widget", models.Index(fields=["name"], name="rollbacklab_name_idx")),
        migrations.AlterField("widget", "size", models.CharField(max_length=5)),
        migrations.RunPython(add_raw_index, drop_raw_index),
        migrations.RunPython(fail_on_marked_widgets, migrations.RunPython.noop),
    ]
