from django.db import models


class Item(models.Model):
    name = models.CharField(max_length=50)
    price = models.IntegerField()
    stock = models.IntegerField()
    code = models.CharField(max_length=10, default="")  # 0003


class Link(models.Model):
    # Past 768 utf8mb4 characters MariaDB keeps the unique value as a hash (a
    # long unique), which ON DUPLICATE KEY UPDATE may match before the key.
    url = models.CharField(max_length=1000, unique=True)
    # Compared without case on every backend (0004): SQLite NOCASE, a
    # non-deterministic ICU collation on PostgreSQL, utf8mb4_general_ci on MariaDB.
    title = models.CharField(max_length=50)


class Tag(models.Model):
    # A text primary key compared without case on every backend (0005), as
    # MariaDB's default *_ci collations compare one.
    code = models.CharField(max_length=20, primary_key=True)
    note = models.CharField(max_length=50)
