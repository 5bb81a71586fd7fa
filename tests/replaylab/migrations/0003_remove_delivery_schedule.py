from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("replaylab", "0002_billing_interval")]
    operations = [migrations.RemoveField("plan", "delivery_schedule")]
