"""Two columns, then a step that can be made to wait: a test kills the
process there (DBTOOLS_TESTS_KILL_POINT names a file this step creates before
it waits), as a deploy killed mid-migration would. Atomic, so PostgreSQL and
SQLite take the columns back with the transaction; MariaDB cannot."""

import os
import time
from pathlib import Path

from django.db import migrations, models


def wait_to_be_killed(apps, schema_editor):
    point = os.environ.get("DBTOOLS_TESTS_KILL_POINT")
    if point:
        Path(point).touch()
        time.sleep(120)


class Migration(migrations.Migration):
    dependencies = [("rollbacklab", "0002_half_applied")]
    operations = [
        migrations.AddField("widget", "extra", models.IntegerField(null=True)),
        migrations.AddField("widget", "extra2", models.IntegerField(null=True)),
        migrations.RunPython(wait_to_be_killed, migrations.RunPython.noop),
    ]
