from django.db import models


class Note(models.Model):
    text = models.CharField(max_length=100)
    touched = models.IntegerField(default=0)


class Label(models.Model):  # 0002: a model added since a backup at 0001
    name = models.CharField(max_length=50)
