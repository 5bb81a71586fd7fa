import uuid

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("rawlab", "0003_entry_index")]
    operations = [
        migrations.AddField(
            model_name="label",
            name="key",
            field=models.UUIDField(default=uuid.uuid4, editable=False, null=True),
        ),
    ]
