from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("lab", "0003_add_weight")]
    operations = [migrations.RemoveField("gadget", "legacy")]
