from django.db import migrations


class Migration(migrations.Migration):
    """DBT105, acknowledged here."""

    dbtools_accept = {"DBT105": "Crates were never used; their rows are test data."}
    dependencies = [("lintlab", "0004_remove_legacy")]
    operations = [migrations.DeleteModel("Crate")]
