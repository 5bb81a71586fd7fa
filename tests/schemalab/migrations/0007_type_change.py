from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("schemalab", "0006_required_with_default")]
    operations = [migrations.AlterField("box", "size", models.CharField(max_length=20))]
