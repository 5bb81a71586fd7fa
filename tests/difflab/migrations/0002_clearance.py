"""A data migration: sold-out items half price and renamed, negative stock
reset, retired items deleted."""

from django.db import migrations


def clearance(apps, schema_editor):
    Item = apps.get_model("difflab", "Item")
    items = Item.objects.using(schema_editor.connection.alias)
    for item in items.filter(stock=0):
        item.name += " (sale)"
        item.price //= 2
        item.save(update_fields=["name", "price"])
    items.filter(stock__lt=0).update(stock=0)
    items.filter(name__startswith="retired").delete()


class Migration(migrations.Migration):
    dependencies = [("difflab", "0001_initial")]
    operations = [migrations.RunPython(clearance, migrations.RunPython.noop)]
