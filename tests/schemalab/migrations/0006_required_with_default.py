from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("schemalab", "0005_add_optional_field")]
    operations = [migrations.AlterField("box", "note", models.CharField(default="none", max_length=50))]
