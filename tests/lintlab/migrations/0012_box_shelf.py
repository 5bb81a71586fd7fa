import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """DBT202 on PostgreSQL: the foreign key is added to a column that exists (and DBT201 for its index)."""

    dependencies = [("lintlab", "0011_note_index")]
    operations = [
        migrations.AddField(
            "box", "shelf",
            models.ForeignKey(db_constraint=False, null=True, on_delete=django.db.models.deletion.SET_NULL,
                              to="lintlab.shelf"),
        ),
        migrations.AlterField(
            "box", "shelf",
            models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, to="lintlab.shelf"),
        ),
    ]
