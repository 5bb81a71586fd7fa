from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("lab", "0005_unique_name")]
    operations = [migrations.AlterField("gadget", "code", models.CharField(max_length=20))]
