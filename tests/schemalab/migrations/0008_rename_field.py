from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("schemalab", "0007_type_change")]
    operations = [migrations.RenameField("box", "nickname", "label")]
