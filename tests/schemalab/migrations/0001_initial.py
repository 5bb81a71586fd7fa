from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="Box",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=50)),
                ("legacy", models.TextField(default="")),
                ("size", models.IntegerField()),
                ("note", models.CharField(max_length=50, null=True)),
                ("nickname", models.CharField(max_length=50)),
                ("schedule", models.CharField(max_length=50)),
            ],
        ),
    ]
