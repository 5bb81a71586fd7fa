from django.apps import AppConfig


class RollbackLabConfig(AppConfig):
    """A migration that is not atomic and fails half-way, for safemigrate's rollback."""

    name = "tests.rollbacklab"
    label = "rollbacklab"
