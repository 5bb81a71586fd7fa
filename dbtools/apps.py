from django.apps import AppConfig


class DbtoolsConfig(AppConfig):
    name = "dbtools"
    verbose_name = "dbtools"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the system checks
