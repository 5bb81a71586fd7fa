from django.db import migrations


class Migration(migrations.Migration):
    """No schema: recording it applied by hand is honest."""

    initial = True
    dependencies = []
    operations = [migrations.RunPython(migrations.RunPython.noop, migrations.RunPython.noop)]
