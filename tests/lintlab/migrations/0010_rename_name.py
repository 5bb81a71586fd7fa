from django.db import migrations


class Migration(migrations.Migration):
    """DBT109."""

    dependencies = [("lintlab", "0009_size_text")]
    operations = [migrations.RenameField("box", "name", "title")]
