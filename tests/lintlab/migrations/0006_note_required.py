from django.db import migrations, models


class Migration(migrations.Migration):
    """DBT106 over NULLs (nothing fills them); DBT203 on PostgreSQL."""

    dependencies = [("lintlab", "0005_delete_crate")]
    operations = [migrations.AlterField("box", "note", models.CharField(max_length=20))]
