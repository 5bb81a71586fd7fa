from django.db import migrations


def touch_nothing(apps, schema_editor):
    pass


def touch_nothing_either(apps, schema_editor):
    pass


class Migration(migrations.Migration):
    """DBT302 (a warning, and at info when elidable), DBT303; backwards, DBT111."""

    dependencies = [("lintlab", "0016_drop_scratch")]
    operations = [
        migrations.RunPython(touch_nothing),
        migrations.RunPython(touch_nothing_either, elidable=True),
        migrations.RunSQL("SELECT 1"),
    ]
