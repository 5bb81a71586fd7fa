from django.db import migrations, models


class Migration(migrations.Migration):
    """DBT101 on a table with rows, DBT103 on an empty one."""

    dependencies = [("lintlab", "0001_initial")]
    operations = [migrations.AddField("box", "count", models.IntegerField())]
