from django.contrib.postgres.fields import (
    ArrayField,
    BigIntegerRangeField,
    DateRangeField,
    DateTimeRangeField,
    DecimalRangeField,
    IntegerRangeField,
)
from django.db import models


class PostgresTypes(models.Model):
    tags = ArrayField(models.CharField(max_length=20), default=list, blank=True)
    matrix = ArrayField(ArrayField(models.IntegerField()), null=True)
    int_range = IntegerRangeField(null=True)
    big_range = BigIntegerRangeField(null=True)
    decimal_range = DecimalRangeField(null=True)
    datetime_range = DateTimeRangeField(null=True)
    date_range = DateRangeField(null=True)
