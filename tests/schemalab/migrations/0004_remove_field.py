from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("schemalab", "0003_add_table")]
    operations = [migrations.RemoveField("box", "legacy")]
