from django.db import migrations


class Migration(migrations.Migration):
    """Nothing forwards; DBT304 backwards (its reverse drops the table)."""

    dependencies = [("lintlab", "0014_direct_import")]
    operations = [
        migrations.RunSQL("CREATE TABLE lintlab_scratch (id integer)", reverse_sql="DROP TABLE lintlab_scratch"),
    ]
