"""Schema shapes a shop lacks and a backup tool must survive."""

from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import F


# Multi-table inheritance, three levels: each level is its own table.
class Place(models.Model):
    name = models.CharField(max_length=50)
    address = models.CharField(max_length=80, blank=True)


class Restaurant(Place):
    serves_pizza = models.BooleanField(default=False)


class ItalianRestaurant(Restaurant):
    has_wood_oven = models.BooleanField(default=True)


class ProxyPlace(Place):
    class Meta:
        proxy = True


class UnmanagedReport(models.Model):
    """No table: Django never creates it, and a backup must not look for one."""

    title = models.CharField(max_length=50)

    class Meta:
        managed = False
        db_table = "edgecases_external_report"


# A foreign-key cycle between two tables.
class Author(models.Model):
    name = models.CharField(max_length=50)
    favourite_book = models.ForeignKey(
        "Book", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )


class Book(models.Model):
    title = models.CharField(max_length=100)
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")


class Node(models.Model):
    """Self-referencing tree, rows may point at later rows."""

    label = models.CharField(max_length=20)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE)


# Auto-created many-to-many tables.
class Tag(models.Model):
    name = models.CharField(max_length=30, unique=True)


class Article(models.Model):
    title = models.CharField(max_length=100)
    tags = models.ManyToManyField(Tag, blank=True, related_name="articles")
    related = models.ManyToManyField("self", blank=True)
    comments = GenericRelation("Comment")


# A generic foreign key: content type ids must survive a restore.
class Comment(models.Model):
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveBigIntegerField()
    content_object = GenericForeignKey("content_type", "object_id")
    body = models.TextField()


class Rectangle(models.Model):
    width = models.IntegerField()
    height = models.IntegerField()
    area = models.GeneratedField(
        expression=F("width") * F("height"), output_field=models.IntegerField(), db_persist=True
    )


class AllTypes(models.Model):
    """Every scalar field type Django has, all nullable so a row can hold NULLs."""

    big_integer = models.BigIntegerField(null=True)
    binary = models.BinaryField(null=True)
    boolean = models.BooleanField(null=True)
    char = models.CharField(max_length=100, null=True)
    date = models.DateField(null=True)
    date_time = models.DateTimeField(null=True)
    decimal = models.DecimalField(max_digits=30, decimal_places=10, null=True)
    duration = models.DurationField(null=True)
    email = models.EmailField(null=True)
    file = models.FileField(null=True)
    file_path = models.FilePathField(path="/tmp", null=True)
    float = models.FloatField(null=True)
    generic_ip = models.GenericIPAddressField(null=True)
    integer = models.IntegerField(null=True)
    json = models.JSONField(null=True)
    positive_big_integer = models.PositiveBigIntegerField(null=True)
    positive_integer = models.PositiveIntegerField(null=True)
    positive_small_integer = models.PositiveSmallIntegerField(null=True)
    slug = models.SlugField(null=True)
    small_integer = models.SmallIntegerField(null=True)
    text = models.TextField(null=True)
    time = models.TimeField(null=True)
    url = models.URLField(null=True)
    uuid = models.UUIDField(null=True)


class JSONDocument(models.Model):
    """JSON null is a value, not SQL NULL: `required` (NOT NULL) can hold it, and
    `optional` can hold either."""

    required = models.JSONField()
    optional = models.JSONField(null=True)


class SmallAutoThing(models.Model):
    id = models.SmallAutoField(primary_key=True)
    name = models.CharField(max_length=10)


class TimestampedNote(models.Model):
    """auto_now fields must keep their backed-up values."""

    text = models.CharField(max_length=50)
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)


class UniqueEmail(models.Model):
    email = models.CharField(max_length=50, unique=True)
    nickname = models.CharField(max_length=5)


class EmailReference(models.Model):
    """Points at a UniqueEmail by its email (to_field), not by its primary key."""

    owner = models.ForeignKey(UniqueEmail, to_field="email", on_delete=models.CASCADE)


class DeferrableUnique(models.Model):
    code = models.CharField(max_length=10)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["code"],
                name="edgecases_deferrable_code_uniq",
                deferrable=models.Deferrable.DEFERRED,
            )
        ]
