"""Free text parsed into two fields, then dropped: 'every 2 weeks' -> WEEK, 2."""

import re

from django.db import migrations, models

UNITS = {"day": "DAY", "week": "WEEK", "month": "MONTH", "year": "YEAR"}


def parse_schedules(apps, schema_editor):
    Box = apps.get_model("schemalab", "Box")
    for box in Box.objects.using(schema_editor.connection.alias).all():
        match = re.fullmatch(r"every (\d+) (day|week|month|year)s?", box.schedule.strip().lower())
        if match:
            box.interval, box.interval_count = UNITS[match[2]], int(match[1])
            box.save(update_fields=["interval", "interval_count"])


class Migration(migrations.Migration):
    dependencies = [("schemalab", "0008_rename_field")]
    operations = [
        migrations.AddField("box", "interval", models.CharField(default="MONTH", max_length=10)),
        migrations.AddField("box", "interval_count", models.IntegerField(default=1)),
        migrations.RunPython(parse_schedules, migrations.RunPython.noop),
        migrations.RemoveField("box", "schedule"),
    ]
