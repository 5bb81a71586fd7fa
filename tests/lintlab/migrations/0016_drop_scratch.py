from django.db import migrations


class Migration(migrations.Migration):
    """DBT304."""

    dependencies = [("lintlab", "0015_scratch_table")]
    operations = [
        migrations.RunSQL("DROP TABLE lintlab_scratch", reverse_sql="CREATE TABLE lintlab_scratch (id integer)"),
    ]
