from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("lab", "0002_rename_size")]
    operations = [
        migrations.AddField("gadget", "weight", models.IntegerField(default=0), preserve_default=False),
    ]
