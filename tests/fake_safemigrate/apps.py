from django.apps import AppConfig


class FakeSafemigrateConfig(AppConfig):
    """Stands in for django-safemigrate (label django_safemigrate) in the system-check test."""

    name = "tests.fake_safemigrate"
    label = "django_safemigrate"
