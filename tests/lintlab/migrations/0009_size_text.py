from django.db import migrations, models


class Migration(migrations.Migration):
    """DBT108; DBT205 on PostgreSQL."""

    dependencies = [("lintlab", "0008_name_unique")]
    operations = [migrations.AlterField("box", "size", models.CharField(max_length=20))]
