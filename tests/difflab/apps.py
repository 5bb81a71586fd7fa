from django.apps import AppConfig


class DifflabConfig(AppConfig):
    """A data migration and a schema migration, for what safemigrate shows changed."""

    name = "tests.difflab"
    label = "difflab"
