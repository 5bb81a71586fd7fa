"""Django internals dbtools relies on, each in one place with the versions it
is pinned for. A Django upgrade that moves one breaks here, and in the test
named beside it, rather than deep inside a restore."""

from __future__ import annotations

from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.state import ProjectState


def state_before_migrating(executor: MigrationExecutor) -> ProjectState:
    """The project state of the applied migrations, as `manage.py migrate`
    builds it before emitting pre_migrate (Django 5.2 and 6.1:
    `MigrationExecutor._create_project_state`). Pinned by
    tests/test_replay.py::test_a_replay_creates_the_content_types_migrate_would."""
    state: ProjectState = executor._create_project_state(  # type: ignore[attr-defined]
        with_applied_migrations=True
    )
    return state
