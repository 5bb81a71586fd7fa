from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("lab", "0004_remove_legacy")]
    operations = [migrations.AlterField("gadget", "name", models.CharField(max_length=50, unique=True))]
