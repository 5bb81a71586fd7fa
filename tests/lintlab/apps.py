from django.apps import AppConfig


class LintlabConfig(AppConfig):
    """One migration per safemigrate finding code, and one that looks risky but is safe."""

    name = "tests.lintlab"
    default_auto_field = "django.db.models.BigAutoField"
