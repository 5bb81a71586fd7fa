"""Parse the free-text delivery_schedule ("every 2 weeks", "daily") into
billing_interval + billing_interval_count."""

import re

from django.db import migrations, models

UNITS = {"day": "DAY", "week": "WEEK", "month": "MONTH", "year": "YEAR"}
WORDS = {"daily": ("DAY", 1), "weekly": ("WEEK", 1), "monthly": ("MONTH", 1), "yearly": ("YEAR", 1)}


def parse_schedules(apps, schema_editor):
    Plan = apps.get_model("replaylab", "Plan")
    for plan in Plan.objects.using(schema_editor.connection.alias).all():
        text = plan.delivery_schedule.strip().lower()
        match = re.fullmatch(r"every (\d+) (day|week|month|year)s?", text)
        if match:
            plan.billing_interval_count = int(match[1])
            plan.billing_interval = UNITS[match[2]]
        elif text in WORDS:
            plan.billing_interval, plan.billing_interval_count = WORDS[text]
        plan.save(update_fields=["billing_interval", "billing_interval_count"])


class Migration(migrations.Migration):
    dependencies = [("replaylab", "0001_initial")]
    operations = [
        migrations.AddField("plan", "billing_interval", models.CharField(default="MONTH", max_length=10)),
        migrations.AddField("plan", "billing_interval_count", models.IntegerField(default=1)),
        migrations.RunPython(parse_schedules, migrations.RunPython.noop),
    ]
