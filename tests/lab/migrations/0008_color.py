from django.db import migrations, models


def refuse_explosive_gadgets(apps, schema_editor):
    Gadget = apps.get_model("lab", "Gadget")
    if Gadget.objects.using(schema_editor.connection.alias).filter(name="explode").exists():
        raise RuntimeError("a gadget is named 'explode'")


class Migration(migrations.Migration):
    dependencies = [("lab", "0007_dimension_text")]
    operations = [
        migrations.AddField("gadget", "color", models.CharField(default="red", max_length=10)),
        migrations.RunPython(refuse_explosive_gadgets, migrations.RunPython.noop),
    ]
