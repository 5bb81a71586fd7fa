from django.db import migrations


def touch_nothing(apps, schema_editor):
    pass


class Migration(migrations.Migration):
    dependencies = [("lab", "0008_color")]
    operations = [
        migrations.RunPython(touch_nothing),
        migrations.RunSQL("SELECT 1"),
    ]
