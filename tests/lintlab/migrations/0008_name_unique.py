from django.db import migrations, models


class Migration(migrations.Migration):
    """DBT107 over duplicates; DBT206 (and DBT201 for the LIKE index) on PostgreSQL."""

    dependencies = [("lintlab", "0007_flag_required")]
    operations = [migrations.AlterField("box", "name", models.CharField(max_length=50, unique=True))]
