"""Migrate an empty database one migration at a time, checking each step with
safemigrate's checks first; print each finding as a JSON line.

    CORPUS_DATABASE_URL=... DJANGO_SETTINGS_MODULE=tests.corpus.settings python -m tests.corpus.walk
"""

from __future__ import annotations

import sys

import django
import orjson


def main() -> None:
    django.setup()
    from django.core.management import call_command
    from django.db import connections
    from django.db.migrations.executor import MigrationExecutor

    from dbtools.migrate.plan import plan_migrations

    executor = MigrationExecutor(connections["default"])
    steps = executor.migration_plan(executor.loader.graph.leaf_nodes())
    for migration, _backwards in steps:
        plan = plan_migrations("default", migration.app_label, migration.name)
        for finding in plan.findings:
            if finding.migration == f"{migration.app_label}.{migration.name}":
                sys.stdout.write(orjson.dumps({
                    "migration": finding.migration, "code": finding.code, "level": finding.level,
                    "message": finding.message, "acknowledged": finding.acknowledged,
                }).decode() + "\n")  # fmt: skip
        call_command("migrate", migration.app_label, migration.name, verbosity=0)
    sys.stdout.write(orjson.dumps({"steps": len(steps)}).decode() + "\n")


if __name__ == "__main__":
    main()
