from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("schemalab", "0002_add_field_with_default")]
    operations = [
        migrations.CreateModel(
            name="Subscriber",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("email", models.EmailField(max_length=254)),
            ],
        ),
    ]
