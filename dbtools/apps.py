from django.apps import AppConfig


class DbtoolsConfig(AppConfig):
    name = "dbtools"
    verbose_name = "dbtools"
    default_auto_field = "django.db.models.BigAutoField"
