from django.db import models


class Widget(models.Model):
    name = models.CharField(max_length=50)
    size = models.CharField(max_length=5)  # 0002 narrowed it from 50

    class Meta:
        indexes = [models.Index(fields=["name"], name="rollbacklab_name_idx")]  # 0002
