from typing import Any


class PostgresOnlyRouter:
    """Keeps the pgonly app's tables (arrays, ranges) on PostgreSQL databases."""

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        if app_label != "pgonly":
            return None
        from django.db import connections

        return connections[db].vendor == "postgresql"
