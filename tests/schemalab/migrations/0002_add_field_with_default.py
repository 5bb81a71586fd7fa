from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("schemalab", "0001_initial")]
    operations = [migrations.AddField("box", "featured", models.BooleanField(default=False))]
