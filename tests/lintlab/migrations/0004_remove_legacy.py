from django.db import migrations


class Migration(migrations.Migration):
    """DBT104."""

    dependencies = [("lintlab", "0003_box_weight")]
    operations = [migrations.RemoveField("box", "legacy")]
