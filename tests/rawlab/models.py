import uuid

from django.db import models


class Note(models.Model):
    text = models.CharField(max_length=100)
    touched = models.IntegerField(default=0)


class Label(models.Model):  # 0002: a model added since a backup at 0001
    name = models.CharField(max_length=50)
    # 0004: a value each migrate makes anew, as Wagtail's page translation_key
    key = models.UUIDField(default=uuid.uuid4, null=True, editable=False)


class Entry(models.Model):  # 0003: on SQLite a trigger copies each new entry into EntryIndex
    title = models.CharField(max_length=100)


class EntryIndex(models.Model):
    entry = models.OneToOneField(Entry, primary_key=True, on_delete=models.CASCADE)
    title = models.CharField(max_length=100)
