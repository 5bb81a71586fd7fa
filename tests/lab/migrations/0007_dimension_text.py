from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("lab", "0006_code_required")]
    operations = [migrations.AlterField("gadget", "dimension", models.CharField(max_length=20))]
