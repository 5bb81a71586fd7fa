from django.db import models


class Shelf(models.Model):
    name = models.CharField(max_length=20)


class Box(models.Model):
    title = models.CharField(max_length=50, unique=True)  # 0008 unique, 0010 renamed from name
    note = models.CharField(max_length=20)  # 0006 made it required
    flag = models.BooleanField(default=False)  # 0007 required, with a default
    size = models.CharField(max_length=20)  # 0009 from integer to text
    count = models.IntegerField()  # 0002, required with no default
    weight = models.IntegerField()  # 0003, with a one-off default
    shelf = models.ForeignKey(Shelf, null=True, on_delete=models.SET_NULL)  # 0012

    class Meta:
        indexes = [models.Index(fields=["note"], name="lintlab_note_idx")]  # 0011
        constraints = [
            models.CheckConstraint(
                condition=models.Q(count__gte=0), name="lintlab_count_not_negative"
            )
        ]  # 0013
