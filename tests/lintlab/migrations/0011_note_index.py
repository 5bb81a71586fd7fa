from django.db import migrations, models


class Migration(migrations.Migration):
    """DBT201 on PostgreSQL."""

    dependencies = [("lintlab", "0010_rename_name")]
    operations = [migrations.AddIndex("box", models.Index(fields=["note"], name="lintlab_note_idx"))]
