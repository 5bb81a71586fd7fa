from django.db import migrations


class Migration(migrations.Migration):
    replaces = [("squashlab", "0001_initial"), ("squashlab", "0002_second")]
    initial = True
    dependencies = []
    operations = [migrations.RunPython(migrations.RunPython.noop, migrations.RunPython.noop)]
