from django.apps import AppConfig


class LabConfig(AppConfig):
    """A model whose migrations hold one of each risky operation, for safemigrate."""

    name = "tests.lab"
    label = "lab"
