from django.db import models


class Gadget(models.Model):
    name = models.CharField(max_length=50, unique=True)  # 0005 made it unique
    code = models.CharField(max_length=20)  # 0006 made it required
    dimension = models.CharField(max_length=20)  # 0002 renamed it from size, 0007 made it text
    weight = models.IntegerField()  # 0003 added it with a one-off default
    color = models.CharField(max_length=10, default="red")  # 0008, with a check that can fail
