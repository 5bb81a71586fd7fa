from django.db import models


class Plan(models.Model):
    name = models.CharField(max_length=50)
    billing_interval = models.CharField(max_length=10, default="MONTH")  # 0002
    billing_interval_count = models.IntegerField(default=1)  # 0002; 0003 dropped delivery_schedule
