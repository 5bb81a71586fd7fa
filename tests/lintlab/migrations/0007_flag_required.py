from django.db import migrations, models


class Migration(migrations.Migration):
    """Looks like DBT106 but is safe: Django fills the NULLs with the default. DBT203 on PostgreSQL."""

    dependencies = [("lintlab", "0006_note_required")]
    operations = [migrations.AlterField("box", "flag", models.BooleanField(default=False))]
