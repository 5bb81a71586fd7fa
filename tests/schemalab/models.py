from django.db import models


class Box(models.Model):
    name = models.CharField(max_length=50)
    size = models.CharField(max_length=20)  # 0007: was an integer
    note = models.CharField(max_length=50, default="none")  # 0006: was nullable
    label = models.CharField(max_length=50)  # 0008: renamed from nickname
    featured = models.BooleanField(default=False)  # 0002
    color = models.CharField(max_length=20, null=True)  # 0005
    interval = models.CharField(max_length=10, default="MONTH")  # 0009, parsed from schedule
    interval_count = models.IntegerField(default=1)  # 0009


class Subscriber(models.Model):  # 0003
    email = models.EmailField()
