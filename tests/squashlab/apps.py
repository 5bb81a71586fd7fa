from django.apps import AppConfig


class SquashlabConfig(AppConfig):
    """A squashed migration, which a test leaves partially applied."""

    name = "tests.squashlab"
