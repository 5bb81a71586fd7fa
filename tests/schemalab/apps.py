from django.apps import AppConfig


class SchemaLabConfig(AppConfig):
    """One migration per schema change of the reference document's
    'Schema Change Compatibility' list, for restores across all of them."""

    name = "tests.schemalab"
    label = "schemalab"
