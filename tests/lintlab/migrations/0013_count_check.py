from django.db import migrations, models


class Migration(migrations.Migration):
    """DBT204 on PostgreSQL."""

    dependencies = [("lintlab", "0012_box_shelf")]
    operations = [
        migrations.AddConstraint(
            "box", models.CheckConstraint(condition=models.Q(count__gte=0), name="lintlab_count_not_negative")
        ),
    ]
