from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("schemalab", "0004_remove_field")]
    operations = [migrations.AddField("box", "color", models.CharField(max_length=20, null=True))]
