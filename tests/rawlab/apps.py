from django.apps import AppConfig


class RawLabConfig(AppConfig):
    """Data migrations that reach a database by name, as real projects' do:
    through `django.db.connection`, `using=DEFAULT_DB_ALIAS`, and Django's
    `create_permissions()`. A replay must run them on its scratch database only."""

    name = "tests.rawlab"
    label = "rawlab"
