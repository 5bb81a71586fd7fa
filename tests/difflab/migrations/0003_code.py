from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("difflab", "0002_clearance")]
    operations = [migrations.AddField("item", "code", models.CharField(default="", max_length=10))]
