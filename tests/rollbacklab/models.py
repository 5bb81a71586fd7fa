from django.db import models


class Widget(models.Model):
    name = models.CharField(max_length=50)
    size = models.CharField(max_length=5)  # 0002 narrowed it from 50
    extra = models.IntegerField(null=True)  # 0003
    extra2 = models.IntegerField(null=True)  # 0003

    class Meta:
        indexes = [models.Index(fields=["name"], name="rollbacklab_name_idx")]  # 0002
