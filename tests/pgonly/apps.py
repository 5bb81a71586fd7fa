from django.apps import AppConfig


class PgOnlyConfig(AppConfig):
    name = "tests.pgonly"
    label = "pgonly"
