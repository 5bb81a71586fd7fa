from django.db import migrations, models


class Migration(migrations.Migration):
    """DBT102."""

    dependencies = [("lintlab", "0002_box_count")]
    operations = [migrations.AddField("box", "weight", models.IntegerField(default=0), preserve_default=False)]
