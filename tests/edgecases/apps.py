from django.apps import AppConfig


class EdgeCasesConfig(AppConfig):
    name = "tests.edgecases"
    label = "edgecases"
